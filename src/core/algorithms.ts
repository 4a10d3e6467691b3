/**
 * The signature algorithms jitgate accepts, in one module with no imports: the config schema
 * validates against this list, the key set imports keys for it and the decision core reads it,
 * so none of them has to import another layer to learn it.
 */

/** Asymmetric only: a symmetric key shared with a sidecar could mint grants. */
export const ASYMMETRIC_ALGS = ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256'] as const;
export type Algorithm = (typeof ASYMMETRIC_ALGS)[number];

/** `dpop.algorithms` when the config does not say. */
export const DEFAULT_DPOP_ALGORITHMS = Object.freeze(['ES256', 'EdDSA'] as const);
