"""The fixed-point scales and bit bounds of the three-party margin check (party.py): secrets and
public coefficients as exact integers, and the bit lengths the secure comparisons assume."""

SECRET_BITS = 40  # F: quantities, q·entry terms, balances to 2**-40
PUBLIC_BITS = 48  # G: public coefficients to 2**-48
USD_BITS = SECRET_BITS + PUBLIC_BITS  # W: USD amounts on the shares, to 2**-88
ENTRY_SHIFT_MAX_BITS = 16  # q·entry terms: up to 2**-56, their coefficients down to 2**-32
QUANTITY_LIMIT_BITS = 31  # |q|, |b| < 2**31 units
USD_LIMIT_BITS = 47  # |USD amounts| < 2**47 (1.4e14)
# Truncated products (a public fraction times a USD amount, q² times a public coefficient) stay
# below 2**(W + G + 47); MPyC's truncation masks them with l + sec_param random bits, so the
# prime needs that much room above them (and no more: field arithmetic, and under PRSS each random
# bit's modular square root, cost more on a larger prime).
TRUNCATE_BITS = USD_BITS + PUBLIC_BITS + USD_LIMIT_BITS
