// QUIC sniffing on the native opener: the opener UDP routing hands to its
// sniffers (src/core/sniff/datagram.ts), and `ugate sniff-quic` (files).

import * as native from 'ugate:native'
import { sniffQuic, type QuicOpen, type QuicSniffOptions } from '../core/sniff/quic.js'
import type { SniffResult } from '../core/sniff/types.js'
import { StartupError } from '../core/errors.js'
import { writeStdout } from './process.js'
import { describeError } from './sockets.js'

/** Client Initial packets of a datagram, opened by native/quic.c (mbedTLS). */
export const nativeQuicOpen: QuicOpen = (datagram) => native.quicOpenInitials(datagram)

/**
 * Sniff a UDP flow's first datagrams (every one the client sent so far, in
 * order): ok with proto 'quic' and host/alpn; need-more: call again with the
 * next datagram; not-mine: not a QUIC v1/v2 client Initial; invalid: error.
 */
function sniffQuicDatagrams(datagrams: readonly Uint8Array[], opts: QuicSniffOptions = {}): SniffResult {
  return sniffQuic(datagrams, nativeQuicOpen, opts)
}

const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

/** `ugate sniff-quic [--packets] FILE...`: prints JSON lines; true when the ClientHello was read. */
export function sniffQuicFiles(files: readonly string[], packets: boolean): boolean {
  const datagrams = files.map((f) => {
    try {
      return new Uint8Array(native.readFile(f, true))
    } catch (e) {
      throw new StartupError(`${f}: cannot read: ${describeError(e)}`)
    }
  })
  if (packets) {
    datagrams.forEach((d, i) => {
      const o = native.quicOpenInitials(d)
      if ('error' in o) return writeStdout(`${JSON.stringify({ datagram: i, error: o.error, message: o.message })}\n`)
      for (const p of o.packets) {
        const line = { datagram: i, version: p.version, dcid: toHex(p.dcid), pn: p.pn, frames: toHex(p.frames) }
        writeStdout(`${JSON.stringify(line)}\n`)
      }
    })
  }
  const r = sniffQuicDatagrams(datagrams)
  writeStdout(`${JSON.stringify(r)}\n`)
  return r.status === 'ok'
}
