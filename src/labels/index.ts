// The label and annotation keys rafsnap reads or writes: the one home of these strings, at
// the bottom of the import table so that every folder (the snapshotter, the daemon manager,
// the converter) names them the same way.

/**
 * Snapshot label keys rafsnap reads or writes, with who sets them (docs/compat.md §2). The
 * strings are the wire contract with containerd, CRI and nydus image builders.
 */
export const Label = {
  /** Set by containerd's unpacker: the chain ID the extracted layer will be committed as. */
  TargetSnapshotRef: "containerd.io/snapshot.ref",
  /** Set by containerd/CRI: asks for the `volatile` overlay option on writable mounts. */
  OverlayVolatile: "containerd.io/snapshot/overlay.volatile",
  /** Set by containerd on every snapshot its metadata store keeps alive. */
  GCRoot: "containerd.io/gc.root",
  /** Set by CRI (image ref of the layer's image). */
  CRIImageRef: "containerd.io/snapshot/cri.image-ref",
  /** Set by CRI (digest of the layer). */
  CRILayerDigest: "containerd.io/snapshot/cri.layer-digest",
  /** Set by CRI (digest of the image manifest). */
  CRIManifestDigest: "containerd.io/snapshot/cri.manifest-digest",
  /** Set by nydus image builders on nydus data blob layers (presence only). */
  NydusDataLayer: "containerd.io/snapshot/nydus-blob",
  /** Set by nydus image builders on the bootstrap layer (presence only). */
  NydusMetaLayer: "containerd.io/snapshot/nydus-bootstrap",
  /**
   * Set by nydus converters on the bootstrap layer: a JSON list of the ids of blobs the
   * bootstrap reads that are not layers of the image (a chunk dictionary's).
   */
  NydusReferenceBlobIds: "containerd.io/snapshot/nydus-reference-blob-ids",
  /** Set by nydus converters on the bootstrap layer: the RAFS version ("5" or "6"). */
  NydusFsVersion: "containerd.io/snapshot/nydus-fs-version",
  /** Set by Buildkit: the image reference, read when `CRIImageRef` is missing. */
  StargzReference: "containerd.io/snapshot/remote/stargz.reference",
  /** Set by the caller (auth provider "labels"): the registry user name. Never logged. */
  PullUsername: "containerd.io/snapshot/pullusername",
  /** Set by the caller (auth provider "labels"): the registry password. Never logged. */
  PullSecret: "containerd.io/snapshot/pullsecret",
} as const;
