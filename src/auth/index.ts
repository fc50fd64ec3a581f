export { CONTAINERD_SOCKET, CRI_IMAGE_SERVICE, type CriProxy, criImageProxy, imageServiceSocket } from "./cri-proxy.ts";
export { type CriAuthConfig, CriAuthStore, credentialsOfAuthConfig } from "./cri-auth.ts";
export { imageMatches, registryOf } from "./glob.ts";
export { type CredentialSource, Keychain, type KeychainOptions, type Resolved } from "./keychain.ts";
export { type CredentialProvider, KubeletProviders, loadProviderConfig, parseProviderConfig, type PluginLimits, runPlugin } from "./kubelet.ts";
export { CredentialRenewal, type RenewalOptions, type RenewalRound, type RenewalTarget } from "./renewal.ts";
