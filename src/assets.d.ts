// Text imports embedded by Bun's bundler (`with { type: "text" }`).
declare module "*.sql" {
  const text: string;
  export default text;
}
declare module "*.toml" {
  const text: string;
  export default text;
}
// hash-wasm's per-algorithm bundles: importing one loads only that algorithm (the package root
// loads all of them, ~2 MiB more per thread).
declare module "hash-wasm/dist/blake3.umd.min.js" {
  export { createBLAKE3 } from "hash-wasm";
}
declare module "hash-wasm/dist/crc32.umd.min.js" {
  export { createCRC32 } from "hash-wasm";
}
