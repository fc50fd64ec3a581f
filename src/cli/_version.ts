import pkg from "../../package.json" with { type: "json" };

// Replaced at build time by `bun build --define` (scripts/build.ts); absent when run from source.
declare const RAFSNAP_REVISION: string | undefined;
declare const RAFSNAP_BUILD_TIME: string | undefined;

/** Version facts of this build. */
export function versionInfo() {
  return {
    version: pkg.version,
    revision: typeof RAFSNAP_REVISION === "string" ? RAFSNAP_REVISION : "unknown",
    buildTime: typeof RAFSNAP_BUILD_TIME === "string" ? RAFSNAP_BUILD_TIME : "unknown",
    runtime: `bun ${Bun.version}`,
  };
}

/** The `--version` text of containerd-nydus-grpc, field for field. */
export function goStyleVersion(): string {
  const v = versionInfo();
  return `Version: \tv${v.version}\nRevision: \t${v.revision}\nGo version: \t${v.runtime}\nBuild time: \t${v.buildTime}\n`;
}
