// Bundles src/index.jsx into graph/transport/static/graphiql/ (graphiql.js, graphiql.css), minified.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const outdir = fileURLToPath(new URL("../graph/transport/static/graphiql/", import.meta.url));

await build({
  entryPoints: { graphiql: fileURLToPath(new URL("src/index.jsx", import.meta.url)) },
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "external",
  loader: { ".woff2": "file", ".woff": "file", ".ttf": "file", ".png": "dataurl", ".svg": "dataurl" },
  logLevel: "info",
});
