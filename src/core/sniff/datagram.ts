// What the sniffers learn from a UDP flow's first datagrams, and how long a
// flow may wait for them. The gateway (src/io/udp-flows.ts) calls it with
// every datagram of a new flow so far, one more each time, while native
// keeps the flow's datagrams; undefined means "the next one, please".
// Today's only datagram sniffer is QUIC's (its ClientHello reassembled from
// the CRYPTO frames of every Initial packet, across datagrams).

import { sniffQuic, type QuicOpen } from './quic.js'
import type { SniffProto } from './types.js'

/**
 * Datagrams of a new flow its sniffer sees at most (native copies them while
 * the flow waits for its route). Chromium's ClientHello with a post-quantum
 * key share takes 2; 4 leaves room for a reordered or repeated one; a flow
 * that needs more is routed by address.
 */
export const SNIFF_DATAGRAMS = 4

/**
 * How long a flow whose ClientHello is not complete waits for its next
 * datagram before it is routed by address. A client sends the datagrams of
 * one ClientHello back to back: only a lost one makes the flow wait this long.
 */
export const SNIFF_WAIT_MS = 200

/** What the sniffers learnt; feeds the rules (`host` as a domain, `proto`). */
export interface DatagramSniff {
  host?: string
  proto?: SniffProto
  /** The ClientHello did not complete within the bound: routed by address (the access line says so). */
  sniff?: 'incomplete'
}

/** A QUIC flow whose ClientHello did not complete within SNIFF_DATAGRAMS or SNIFF_WAIT_MS. */
export const INCOMPLETE: Readonly<DatagramSniff> = { proto: 'quic', sniff: 'incomplete' }

/**
 * Sniff a flow's datagrams so far (arrival order, the first first):
 * the result, or undefined when the next datagram is needed.
 */
export function sniffDatagrams(datagrams: readonly Uint8Array[], open: QuicOpen): DatagramSniff | undefined {
  const r = sniffQuic(datagrams, open)
  if (r.status === 'ok') return r.host !== undefined ? { host: r.host, proto: 'quic' } : { proto: 'quic' }
  if (r.status === 'need-more') return datagrams.length >= SNIFF_DATAGRAMS ? { ...INCOMPLETE } : undefined
  if (r.status === 'invalid' && r.proto === 'quic') return { proto: 'quic' }
  return {}
}
