/**
 * HTTP's own syntax, for values an operator gives (config keys, CLI flags) that end up in a request jitgate or its
 * tools send: checked where they are given, since the HTTP client refuses them only when each request is made.
 *
 * @module
 */

/** RFC 9110 §5.6.2 `token`: a method or a header field name. */
export const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A control character a field value may not hold (RFC 9110 §5.5; HTAB is allowed), CR and LF among them. */
export const FIELD_VALUE_CONTROL = /[\0-\x08\x0a-\x1f\x7f]/;
