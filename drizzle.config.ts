import { defineConfig } from "drizzle-kit";

// drizzle-kit writes SQL migrations from src/store/schema.ts; they are committed and
// embedded into the binary by src/store/migrations.ts.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/store/schema.ts",
  out: "./src/store/migrations",
});
