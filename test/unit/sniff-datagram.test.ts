// A UDP flow's sniffer, one datagram at a time as the gateway feeds it
// (src/io/udp-flows.ts): wait while the ClientHello is incomplete, the SNI
// once every piece is there (2 datagrams for Chromium's post-quantum
// ClientHello), routed by address after SNIFF_DATAGRAMS.

import { readFileSync } from 'node:fs'
import t from 'tap'
import { INCOMPLETE, SNIFF_DATAGRAMS, sniffDatagrams } from '../../src/core/sniff/datagram.js'
import { nodeQuicOpen } from '../lib/quic.js'

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/quic/${name}.bin`, import.meta.url)))
const v1 = [0, 1, 2, 3, 4, 5].map((i) => fixture(`chromium-v1-${i}`))
const v2 = [0, 1, 2].map((i) => fixture(`chromium-v2-${i}`))
const rfc9001 = fixture('rfc9001-client-initial')

/** Feed the datagrams one by one, as the flow's 'new' and 'more' events do: the step that decided and what. */
function feed(datagrams: Uint8Array[]) {
  for (let n = 1; n <= datagrams.length; n++) {
    const r = sniffDatagrams(datagrams.slice(0, n), nodeQuicOpen)
    if (r !== undefined) return { after: n, result: r }
  }
  return { after: -1, result: undefined }
}

t.test('Chromium v1 and v2: undecided after the first datagram, the SNI after the second', async (t) => {
  for (const [name, ds] of [
    ['v1', v1],
    ['v2', v2],
  ] as const) {
    t.equal(sniffDatagrams([ds[0]!], nodeQuicOpen), undefined, `${name}: half a ClientHello: wait for more`)
    t.same(feed(ds), { after: 2, result: { host: 'quic.test', proto: 'quic' } }, `${name}: two datagrams, one name`)
  }
})

t.test('the second datagram first, a retransmission or a stray packet in between', async (t) => {
  t.same(feed([v1[1]!, v1[0]!]), { after: 2, result: { host: 'quic.test', proto: 'quic' } }, 'reordered')
  t.same(feed([v1[0]!, v1[0]!, v1[1]!]), { after: 3, result: { host: 'quic.test', proto: 'quic' } }, 'repeated')
  t.same(
    feed([v1[0]!, new Uint8Array([0x40, 1, 2, 3]), v1[1]!]),
    { after: 3, result: { host: 'quic.test', proto: 'quic' } },
    'a short header packet in between is passed over',
  )
})

t.test('bounded: a ClientHello that does not complete is routed by address', async (t) => {
  const junk = new Uint8Array([0x40, 9, 9, 9])
  const ds = [v1[0]!, ...Array<Uint8Array>(SNIFF_DATAGRAMS).fill(junk)]
  t.same(feed(ds), { after: SNIFF_DATAGRAMS, result: INCOMPLETE }, `incomplete after ${SNIFF_DATAGRAMS} datagrams`)
  t.same(INCOMPLETE, { proto: 'quic', sniff: 'incomplete' }, 'marked for the access line')
})

t.test('decided at once: a whole ClientHello, not QUIC, broken QUIC', async (t) => {
  t.same(feed([rfc9001]), { after: 1, result: { host: 'example.com', proto: 'quic' } }, 'RFC 9001: one packet')
  t.same(feed([new Uint8Array([1, 2, 3]), v1[0]!]), { after: 1, result: {} }, 'not QUIC: no name, no wait')
  const flipped = new Uint8Array(v1[0]!)
  flipped[flipped.length - 1]! ^= 1
  t.same(feed([flipped, v1[1]!]), { after: 1, result: { proto: 'quic' } }, 'a first Initial that fails its tag')
})
