// `ugate sniff-quic`: the native QUIC Initial opener (native/quic.c on
// mbedTLS) agrees with the node:crypto one (test/lib/quic.ts, checked
// against the RFC vectors in test/unit/sniff-quic.test.ts) packet by packet,
// on the fixtures and on damaged copies, and the binary's sniff result is
// the one sniffQuic gives on Node.

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { sniffQuic } from '../../src/core/sniff/quic.js'
import { nodeQuicOpen, sniffQuicPacketLines } from '../lib/quic.js'
import { rng } from '../lib/rng.js'
import { runUgate, SANITIZER_RE } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const FIXTURES = new URL('../fixtures/quic/', import.meta.url).pathname
/** Run `ugate sniff-quic --packets` on the datagrams (as files); check it against Node. */
function agree(t: Test, name: string, datagrams: Uint8Array[]): void {
  const dir = tempDir(t, 'ugate-quic-')
  const files = datagrams.map((d, i) => {
    const f = join(dir, `${i}.bin`)
    writeFileSync(f, d)
    return f
  })
  const r = runUgate(['sniff-quic', '--packets', ...files])
  const lines = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  const result = lines.pop()
  // The native message names the error in its own words; the kind must agree.
  const packets = lines.map((l) => ('error' in l ? { datagram: l.datagram, error: l.error } : l))
  t.same(packets, sniffQuicPacketLines(datagrams), `${name}: every packet opened alike`)
  const want = sniffQuic(datagrams, nodeQuicOpen)
  t.same(
    { status: result?.status, host: result?.host, alpn: result?.alpn },
    {
      status: want.status,
      host: 'host' in want ? want.host : undefined,
      alpn: 'alpn' in want ? want.alpn : undefined,
    },
    `${name}: same sniff result (${want.status})`,
  )
  t.equal(r.code, want.status === 'ok' ? 0 : 1, `${name}: exit status`)
  t.same(
    r.stderr.filter((l) => SANITIZER_RE.test(l)),
    [],
    `${name}: no sanitizer reports`,
  )
}

const read = (name: string): Uint8Array => new Uint8Array(readFileSync(join(FIXTURES, `${name}.bin`)))
const sets: Array<[string, Uint8Array[]]> = [
  ['RFC 9001 A.2', [read('rfc9001-client-initial')]],
  ['RFC 9369 A.2', [read('rfc9369-client-initial')]],
  ['Chromium v1', [0, 1, 2, 3, 4, 5].map((i) => read(`chromium-v1-${i}`))],
  ['Chromium v2', [0, 1, 2].map((i) => read(`chromium-v2-${i}`))],
]

t.test('fixtures: native and node:crypto open the same packets and read the same ClientHello', async (t) => {
  for (const [name, ds] of sets) agree(t, name, ds)
  t.equal(sniffQuic(sets[2]![1], nodeQuicOpen).status, 'ok', 'the Chromium capture is read (the check is not vacuous)')
})

t.test('damaged datagrams: native and node:crypto fail alike (fixed seed)', async (t) => {
  const rand = rng(0x51ac)
  const all = sets.flatMap(([, ds]) => ds)
  const damaged: Uint8Array[] = []
  for (let i = 0; i < 200; i++) {
    const d = new Uint8Array(all[Math.floor(rand() * all.length)]!)
    const mode = i % 4
    if (mode === 0) damaged.push(d.subarray(0, Math.floor(rand() * d.length)))
    else {
      const at = mode === 1 ? Math.floor(rand() * 30) : Math.floor(rand() * d.length)
      d[at]! ^= 1 << Math.floor(rand() * 8)
      damaged.push(d)
    }
  }
  // One datagram at a time: each is the first (a later bad one is passed over).
  for (let i = 0; i < damaged.length; i += 20) agree(t, `damaged ${i}-${i + 19}`, damaged.slice(i, i + 20))
  for (const d of damaged.slice(0, 12)) agree(t, `damaged, alone (${d.length} bytes)`, [d])
})

t.test('sniff-quic: usage errors', async (t) => {
  const none = runUgate(['sniff-quic'])
  t.equal(none.code, 2, 'no FILE: exit 2')
  t.match(none.stderr.join('\n'), /needs at least one FILE/)
  const missing = runUgate(['sniff-quic', '/nonexistent-ugate-dir/x.bin'])
  t.equal(missing.code, 1, 'unreadable FILE: exit 1')
  t.match(missing.stderr.join('\n'), /\/nonexistent-ugate-dir\/x\.bin: cannot read: ENOENT/)
})
