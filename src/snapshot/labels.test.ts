import { expect, test } from "bun:test";
import { imageBlobIds, Label } from "./labels.ts";

const hex = (c: string) => c.repeat(64);

test("an image may read its data layers' blobs and the reference blobs its bootstrap layer declares, nothing else", () => {
  const data = (d: string) => ({ [Label.NydusDataLayer]: "true", [Label.CRILayerDigest]: `sha256:${d}` });
  const meta = { [Label.NydusMetaLayer]: "true", [Label.NydusReferenceBlobIds]: JSON.stringify([hex("c"), "not-hex", 7]) };
  expect(imageBlobIds(meta, [data(hex("a")), data(hex("b"))]).sort()).toEqual([hex("a"), hex("b"), hex("c")]);
  // A layer that is not a nydus data layer, or has no (or a malformed) digest, adds nothing.
  expect(imageBlobIds({}, [{ [Label.CRILayerDigest]: `sha256:${hex("d")}` }, { [Label.NydusDataLayer]: "true" }, data("../x")])).toEqual([]);
  // A declaration that is not a JSON list declares nothing.
  expect(imageBlobIds({ [Label.NydusReferenceBlobIds]: "{" }, [])).toEqual([]);
});
