/** The client certificate a connection proved (SPEC §11), as the decision core sees it: no I/O, no X.509 parsing. */
/** The client certificate of the connection a request arrived on; absent = no verified certificate. */
export interface ClientCert {
  /**
   * base64url (no padding) SHA-256 of the DER: what RFC 8705 §3.1 calls `x5t#S256`. Undefined when
   * only the SPIFFE ID is known (Envoy's `source.principal` without `include_peer_certificate`).
   */
  readonly sha256: string | undefined;
  /** The certificate's one `spiffe://` URI SAN (X509-SVID), undefined when it has none or several. */
  readonly spiffeId: string | undefined;
  /** Validity window, ms since the epoch; ±Infinity when the transport only knows the hash (XFCC `Hash=`). */
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}
