import { defineCommand } from "citty";
import { versionInfo } from "./_version.ts";

/** `rafsnap version`: prints version, revision, runtime and build time. */
export default defineCommand({
  meta: { name: "version", description: "Print the version of rafsnap" },
  run() {
    const v = versionInfo();
    process.stdout.write(`rafsnap ${v.version}\nrevision: ${v.revision}\nruntime: ${v.runtime}\nbuilt: ${v.buildTime}\n`);
  },
});
