// What every wire parser answers: the SOCKS and HTTP proxy parsers
// (socks.ts, http-proxy.ts) and the sniffers (sniff/), like the documented
// return codes of sniproxy's parse_tls_header. A parser gets every byte
// received so far in its phase (it keeps no state between calls), never
// throws on bad input, and answers with one status:
//
//   need-more  nothing wrong so far, but the buffer is too short to decide:
//              call again with more bytes (a full buffer makes it an error)
//   not-mine   these bytes are not this parser's protocol: try another (only
//              the sniffers answer it, which guess among protocols)
//   invalid    this parser's protocol, but malformed or over a limit; `error`
//              names the bad value
//   ok         complete and understood: Ok<T> carries the parser's fields;
//              a message parser answers Parsed<T>, which adds `consumed`, the
//              message's length (bytes after it belong to the next phase). A
//              sniffer consumes nothing and answers Ok<T>; its need-more and
//              invalid may also name the protocol once it is recognised.

export type ParseStatus = 'need-more' | 'not-mine' | 'invalid' | 'ok'

export interface NeedMore {
  readonly status: 'need-more'
}

export interface Invalid {
  readonly status: 'invalid'
  readonly error: string
}

export interface NotMine {
  readonly status: 'not-mine'
  readonly error: string
}

/** Complete and understood: the parser's fields. */
export type Ok<T> = { readonly status: 'ok' } & T

/** A complete message: its fields, and how many bytes of the buffer it used. */
export type Parsed<T> = Ok<{ readonly consumed: number } & T>

export const NEED_MORE: NeedMore = Object.freeze({ status: 'need-more' as const })

export function invalid(error: string): Invalid {
  return { status: 'invalid', error }
}

export function notMine(error: string): NotMine {
  return { status: 'not-mine', error }
}
