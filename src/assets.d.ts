// Text imports embedded by Bun's bundler (`with { type: "text" }`).
declare module "*.sql" {
  const text: string;
  export default text;
}
declare module "*.toml" {
  const text: string;
  export default text;
}
