import { basename } from "node:path";
import { run } from "./cli/index.ts";

// In a `bun build --compile` binary process.argv[0] is "bun"; the name it was started as
// (a symlink's name) is process.argv0. Invoked as containerd-nydus-grpc, behave as `serve`;
// as nydusd, as `nydusd`.
const name = basename(process.argv0);
await run(process.argv.slice(2), name === "containerd-nydus-grpc" || name === "nydusd" ? name : "rafsnap");
