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
//   ok         complete and understood; a message parser adds `consumed`,
//              its length (bytes after it belong to the next phase)

export type ParseStatus = 'need-more' | 'not-mine' | 'invalid' | 'ok'

export interface NeedMore {
  readonly status: 'need-more'
}

export interface Invalid {
  readonly status: 'invalid'
  readonly error: string
}

/** A complete message: its fields, and how many bytes of the buffer it used. */
export type Ok<T> = { readonly status: 'ok'; readonly consumed: number } & T

export const NEED_MORE: NeedMore = Object.freeze({ status: 'need-more' as const })

export function invalid(error: string): Invalid {
  return { status: 'invalid', error }
}
