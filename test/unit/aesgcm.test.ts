// native/aesgcm.c, the bulk AES-GCM under mbedTLS's one-shot GCM calls,
// held to Node's crypto (an independent implementation): fixed-seed random
// AES-128 and AES-256 keys, nonces, additional data and every plaintext
// length 0..130 plus longer ones up to 5 KB, sealed and opened, in place
// and not, at unaligned offsets; tampered ciphertexts and tags must be
// refused. The driver (test/native/aesgcm-test.c) also runs each case
// through mbedTLS's own code, which must agree. Built twice: with ASan and
// UBSan, and as the release build compiles it (-Os, musl); the release
// driver runs again under qemu-user on a CPU model without AES-NI, where the
// bulk path must stay unused and mbedTLS's own GCM give the same answers.

import { spawnSync } from 'node:child_process'
import { createCipheriv } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { rng } from '../lib/rng.js'
import { SANITIZER_RE, makeNative, sanitizerEnv } from '../lib/drivers.js'

type Case = { enc: boolean; off: number; inplace: boolean; tagLen: number; key: Buffer; iv: Buffer; aad: Buffer }

const r = rng(0x6c3a9e15)
const int = (n: number) => Math.floor(r() * n)
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)))
const hex = (b: Buffer) => (b.length ? b.toString('hex') : '-')

function seal(c: Case, pt: Buffer): { ct: Buffer; tag: Buffer } {
  const alg = c.key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm'
  const ci = createCipheriv(alg, c.key, c.iv)
  ci.setAAD(c.aad)
  const ct = Buffer.concat([ci.update(pt), ci.final()])
  return { ct, tag: ci.getAuthTag().subarray(0, c.tagLen) }
}

// Lengths: every one 0..130, then a spread up to 5 KB (several 128-byte strides and tails).
const lengths = [...Array.from({ length: 131 }, (_, i) => i), 255, 256, 257, 1023, 1024, 1031, 4096, 5000]
const lines: string[] = []
const want: string[] = []
for (const len of lengths) {
  for (let rep = 0; rep < 3; rep++) {
    const key = bytes(int(2) ? 16 : 32)
    // Mostly 12-byte nonces (the fast path; TLS's), some others (mbedTLS's path).
    const iv = bytes(rep === 2 && len % 5 === 0 ? [1, 8, 16, 60][int(4)]! : 12)
    const aad = bytes([0, 5, 13, 16, 17, 100, 300][int(7)]!)
    const tagLen = int(4) ? 16 : [4, 8, 12, 13, 15][int(5)]!
    const base = { key, iv, aad, tagLen, off: int(16), inplace: int(2) === 1 }
    const pt = bytes(len)
    const { ct, tag } = seal({ ...base, enc: true }, pt)
    const head = (enc: boolean, c: Case) =>
      [enc ? 'e' : 'd', c.off, c.inplace ? 1 : 0, c.tagLen, hex(c.key), hex(c.iv), hex(c.aad)].join(' ')
    lines.push(`${head(true, { ...base, enc: true })} ${hex(pt)}`)
    want.push(`${hex(ct)} ${hex(tag)}`)
    const open = { ...base, enc: false, off: int(16), inplace: int(2) === 1 }
    lines.push(`${head(false, open)} ${hex(ct)} ${hex(tag)}`)
    want.push(`ok ${hex(pt)}`)
    // One flipped bit: in the tag, the ciphertext or the additional data.
    const bad = { ct: Buffer.from(ct), tag: Buffer.from(tag), aad: Buffer.from(aad) }
    const parts = [bad.tag, bad.ct, bad.aad].filter((p) => p.length)
    const part = parts[int(parts.length)]!
    part[int(part.length)]! ^= 1 << int(8)
    lines.push(`${head(false, { ...open, aad: bad.aad })} ${hex(bad.ct)} ${hex(bad.tag)}`)
    want.push('fail -18')
  }
}

const cpuFlags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(' ')
const onAesPclmul = ['aes', 'pclmulqdq', 'ssse3'].every((f) => cpuFlags.includes(f))
const fastExpected = process.arch === 'x64' && onAesPclmul

// The driver's answers: its first lines (fast path, the CPU's AES bits), then one per case,
// then "bulk N" (calls the bulk path ran).
function check(t: Test, out: string[], fast: boolean, cpu: string): void {
  t.equal(out[0], `fast ${fast ? 'yes' : 'no'}`, 'aesgcm_fast: the bulk path where the CPU has AES and PCLMULQDQ')
  t.equal(out[1], `cpu aes+pclmul ${cpu}`, "the CPU's own answer (cpuid)")
  const bulk = /^bulk (\d+)$/.exec(out.at(-2) ?? '')
  t.ok(bulk, 'the driver reports its bulk calls', { got: out.at(-2) })
  // Fast: every 12-byte nonce case (most of them) went the bulk way; else none did, so
  // mbedTLS's own GCM gave every answer below.
  if (fast) t.ok(Number(bulk?.[1]) > want.length / 2, `the bulk path ran (${bulk?.[1]} calls)`)
  else t.equal(bulk?.[1], '0', "the bulk path never ran: mbedTLS's GCM answered every case")
  const got = out.slice(2, -2)
  t.equal(got.length, want.length, 'one answer per case')
  let bad = 0
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i] && bad++ < 5) t.fail(`case ${i}: ${lines[i]!.slice(0, 200)}`, { got: got[i], want: want[i] })
  }
  t.equal(bad, 0, `all ${want.length} answers match Node's crypto`)
}

function run(cmd: string, args: string[]) {
  return spawnSync(cmd, args, {
    env: sanitizerEnv,
    input: lines.join('\n') + '\n',
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
}

const x64 = process.arch === 'x64'
for (const asan of [true, false]) {
  const name = asan ? 'asan' : 'release'
  t.test(name, async (t) => {
    const made = makeNative('aesgcm-test', asan)
    const bin = made.path
    t.equal(made.status, 0, `aesgcm-test builds (${name})`, { stderr: made.stderr })
    if (made.status !== 0) return
    const res = run(bin, [])
    t.equal(res.status, 0, 'driver exits 0', { stderr: res.stderr.slice(0, 4000) })
    t.notMatch(res.stderr, SANITIZER_RE, 'no sanitizer report')
    check(t, res.stdout.split('\n'), fastExpected, x64 ? (onAesPclmul ? 'yes' : 'no') : '-')
  })
}

// The fallback (a CPU without AES-NI and PCLMULQDQ: mbedTLS's own GCM under
// the wrappers) as the release build links it, on QEMU's qemu64 model, which
// has neither: the same cases, the same answers.
t.test('release on a CPU without AES-NI (qemu-x86_64 -cpu qemu64)', async (t) => {
  const bin = makeNative('aesgcm-test', false).path
  const res = run('qemu-x86_64-static', ['-cpu', 'qemu64', bin])
  t.equal(res.error, undefined, 'qemu-x86_64-static runs (qemu-user-static)')
  t.equal(res.status, 0, 'driver exits 0', { stderr: res.stderr.slice(0, 4000) })
  check(t, res.stdout.split('\n'), false, 'no')
})
