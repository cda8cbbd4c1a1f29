"""crossmargin: a multi-asset cross-margining risk engine for crypto derivatives.

The pure risk core lives in `crossmargin.core`; file adapters in `crossmargin.adapters`;
orchestration in `crossmargin.engine`; the command line in `crossmargin.cli`.
"""

from crossmargin.errors import BookFileError, CrossMarginError, InputError, PricingError

__all__ = ["BookFileError", "CrossMarginError", "InputError", "PricingError"]
__version__ = "0.1.0"
