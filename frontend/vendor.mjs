// Copy the pinned browser assets out of node_modules into the places the project ships them from,
// with their licences, and write a manifest (version + SHA-256 of every copied file) that
// tests/dashboard/test_dashboard_assets.py checks against package.json and package-lock.json.
//
//   ECharts (Apache-2.0)  -> src/crossmargin/dashboard/static/vendor/   (package data, served)
//   axe-core (MPL-2.0)    -> tests/dashboard/vendor/                    (test-only: injected by the
//                                                                        Playwright tests, never served)
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const plan = [
  {
    name: "echarts",
    target: "src/crossmargin/dashboard/static/vendor",
    files: {
      "dist/echarts.min.js": "echarts.min.js",
      LICENSE: "echarts.LICENSE",
      NOTICE: "echarts.NOTICE",
      "licenses/LICENSE-d3": "echarts.LICENSE-d3",
    },
  },
  {
    name: "axe-core",
    target: "tests/dashboard/vendor",
    files: { "axe.min.js": "axe.min.js", LICENSE: "axe-core.LICENSE" },
  },
];

for (const { name, target, files } of plan) {
  const source = join(here, "node_modules", name);
  const version = JSON.parse(readFileSync(join(source, "package.json"), "utf8")).version;
  const out = join(root, target);
  mkdirSync(out, { recursive: true });
  const sha256 = {};
  for (const [from, to] of Object.entries(files)) {
    copyFileSync(join(source, from), join(out, to));
    sha256[to] = createHash("sha256").update(readFileSync(join(out, to))).digest("hex");
  }
  const manifest = { package: name, version, sha256 };
  writeFileSync(join(out, `${name}.manifest.json`), JSON.stringify(manifest, null, 2) + "\n");
  console.log(`${name} ${version} -> ${target}`);
}
