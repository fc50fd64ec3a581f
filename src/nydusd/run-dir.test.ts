import { expect, test } from "bun:test";
import { blobfsDir, blobfsOwnerPid, daemonRunDir } from "./run-dir.ts";

test("a blobfs mount's owner pid comes from its run directory's name, directly under the run root", () => {
  expect(blobfsDir(daemonRunDir("/run/rafsnap", 42))).toBe("/run/rafsnap/nydusd-42/blobfs");
  expect(blobfsOwnerPid("/run/rafsnap", "/run/rafsnap/nydusd-42/blobfs")).toBe(42);
  expect(blobfsOwnerPid("/run/rafsnap/", "/run/rafsnap/nydusd-42/blobfs")).toBe(42);
  expect(blobfsOwnerPid("/run/rafsnap", "/run/rafsnap/x/nydusd-42/blobfs")).toBeUndefined(); // another root
  expect(blobfsOwnerPid("/run/rafsnap", "/run/rafsnap/nydusd-42/other")).toBeUndefined();
  expect(blobfsOwnerPid("/run/rafsnap", "/run/rafsnap/nydusd-4x/blobfs")).toBeUndefined();
  expect(blobfsOwnerPid("/run/rafsnap", "/elsewhere/nydusd-42/blobfs")).toBeUndefined();
});
