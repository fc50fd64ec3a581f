export { fdPath, type LayerFile, LayerFileError, openBeneath, openRegular, type RefusedBecause, readBeneath, readLayerFile } from "./beneath.ts";
