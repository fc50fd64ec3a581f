export { basicAuth, type Challenge, type Credentials, credentialsFromDockerConfig, dockerConfigPath, parseChallenge } from "./auth.ts";
export { type FetchedManifest, fetchTls, MANIFEST_MEDIA_TYPES, RegistryClient, type RegistryOptions } from "./client.ts";
export { checkDigest, isDigest } from "./body.ts";
export { kindOfStatus, registryError } from "./errors.ts";
export { endpointHost, formatImageRef, type ImageRef, isLoopbackHost, manifestRefOf, parseImageRef } from "./reference.ts";
