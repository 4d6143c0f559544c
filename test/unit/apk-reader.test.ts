// test/lib/apk-reader.ts against openwrt/apk.ts: the sample package reads
// back field for field as real apk-tools dumps it (fixture), each broken
// variant is rejected with its own code, signatures verify, and a fixed-seed
// fuzz (truncations, bit flips) only ever gets ApkError.

import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import t from 'tap'
import { writeApk } from '../../openwrt/apk.js'
import { ApkError, readApk, readApkStream, SCHEMAS } from '../lib/apk-reader.js'
import type { AdbNode, AdbObject, Apk } from '../lib/apk-reader.js'
import { SAMPLE_EPOCH, sampleSpec } from '../lib/apk-sample.js'
import { repoRoot } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const work = tempDir(t, 'apk-reader-')
let n = 0
const fresh = () => join(work, `t${n++}`)
const sample = writeApk(sampleSpec(fresh()))
const stream = inflateRawSync(sample.subarray(4))
const pack = (s: Buffer) => Buffer.concat([Buffer.from('ADBd'), deflateRawSync(s)])

// ---- apk adbdump's YAML (serialize_yaml.c) for the package schema ----------------
function quote(s: string, key: string, indent: string): string {
  if (s.length >= 80 || key.startsWith('script:') || /[\r\n']|\s#/.test(s)) {
    return `|\n${s
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => `${indent}  ${l}`)
      .join('\n')}`
  }
  return /^[-?:,[\]{}#&*!|>'"%@`]/.test(s) || s.includes(': ') || s.includes('#') ? `'${s}'` : s
}

function dumpObj(o: AdbObject, schema: string, indent: string, first: string): string[] {
  const out: string[] = []
  for (const [name, kind] of SCHEMAS[schema]!) {
    const v: AdbNode | undefined = o[name]
    if (v === undefined) continue
    const lead = out.length === 0 ? first : indent
    if (Buffer.isBuffer(v)) {
      const text = kind === 'hex' ? v.toString('hex') : v.toString('utf8')
      out.push(`${lead}${name}: ${quote(text, schema === 'scripts' ? `script:${name}` : name, indent)}`)
    } else if (typeof v === 'number') {
      out.push(`${lead}${name}: ${name === 'mode' ? `0${v.toString(8)}` : v}`)
    } else if (Array.isArray(v)) {
      out.push(`${lead}${name}: # ${v.length} items`)
      const item = (kind as { arr: { obj: string } }).arr.obj
      for (const it of v) {
        if (item === 'dependency') out.push(`${indent}  - ${((it as AdbObject).name as Buffer).toString()}`)
        else out.push(...dumpObj(it as AdbObject, item, `${indent}    `, `${indent}  - `))
      }
    } else {
      out.push(`${lead}${name}:`)
      out.push(...dumpObj(v, (kind as { obj: string }).obj, `${indent}  `, `${indent}  `))
    }
  }
  return out
}

function adbdump(apk: Apk): string {
  return [
    '#%SCHEMA: 676B6370',
    `# ADB block, size: ${apk.adb.length}, compat: 0, ver: 0`,
    ...dumpObj(apk.tree, 'package', '', ''),
    ...apk.blocks.map((b) => `# ${b.type === 'sig' ? 'signature' : 'data'} block, size: ${b.size}`),
    '',
  ].join('\n')
}

// ---------------------------------------------------------------------------------

t.test('the sample reads back as apk-tools dumps it (fixture)', async (t) => {
  const apk = readApk(sample, { epoch: SAMPLE_EPOCH })
  const fixture = readFileSync(resolve(repoRoot, 'test/fixtures/apk/sample.adbdump'), 'utf8')
  t.match(
    fixture.split('\n')[0],
    /^## apk adbdump \(apk-tools .*commit [0-9a-f]{40}\)/,
    'the fixture names its apk-tools commit',
  )
  t.equal(
    adbdump(apk),
    fixture.slice(fixture.indexOf('\n') + 1),
    'our reading, printed like apk adbdump, is the fixture',
  )
  t.equal(apk.info.name, 'ugate')
  t.equal(apk.info.version, '0.1.0-r1')
  t.equal(apk.info.installedSize, 5000 + 40 + 34 + 17 + 89 + 18 + 83)
  t.same(apk.conffiles, ['/etc/config/ugate'])
  t.same(apk.list, [
    '/etc/config/ugate',
    '/etc/empty',
    '/etc/init.d/ugate',
    '/etc/uci-defaults/99-ugate',
    '/usr/bin/ugate',
  ])
  t.equal(apk.files.find((f) => f.path === '/etc/config/ugate')?.mode, 0o600)
  t.same(Object.keys(apk.scripts).sort(), ['post-install', 'post-upgrade', 'pre-deinstall'])
  t.ok(writeApk(sampleSpec(fresh())).equals(sample), 'same inputs, same bytes')
})

t.test('signatures (EC and RSA) verify; a wrong key or no signature is rejected', async (t) => {
  for (const type of ['ec', 'rsa'] as const) {
    const kp =
      type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 })
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    const signed = writeApk({ ...sampleSpec(fresh()), signKey: kp.privateKey })
    const apk = readApk(signed, { publicKey: kp.publicKey })
    t.equal(apk.signatures.length, 1, `${type}: one signature block`)
    t.equal(apk.blocks[0]?.type, 'sig', `${type}: the signature comes before the data`)
    t.throws(() => readApk(signed, { publicKey: other.publicKey }), { code: 'bad-signature' }, `${type}: wrong key`)
    t.throws(() => readApk(sample, { publicKey: kp.publicKey }), { code: 'unsigned' }, `${type}: unsigned package`)
  }
})

t.test('deviations are rejected by name', async (t) => {
  const mutate = (f: (s: Buffer) => void) => {
    const s = Buffer.from(stream)
    f(s)
    return pack(s)
  }
  const cases: Array<[string, Buffer, object?]> = [
    ['not-apk', stream],
    ['trailing-data', Buffer.concat([sample, Buffer.from([0])])],
    ['deflate', Buffer.concat([Buffer.from('ADBd'), Buffer.from('not deflate at all')])],
    ['bad-schema', mutate((s) => s.write('indx', 4, 'latin1'))],
    ['not-adb', mutate((s) => s.write('ADC.', 0, 'latin1'))],
    ['bad-header', mutate((s) => (s[12] = 1))],
    ['bad-hashes', mutate((s) => (s[s.indexOf('Tiny gateway')] ^= 0x20))],
    ['truncated', pack(stream.subarray(0, stream.length - 8))],
    ['bad-padding', mutate((s) => (s[s.length - 1] = 1))],
    ['data-blocks', pack(stream.subarray(0, stream.length - 5008 - 8))],
    ['data-hash', mutate((s) => (s[s.length - 100] ^= 0x40))],
    ['bad-mtime', sample, { epoch: SAMPLE_EPOCH + 1 }],
    ['bad-arch', sample, { archs: ['mips_24kc'] }],
    ['bad-list', writeApk(sampleSpec(fresh(), { list: '/etc/config/ugate\n' }))],
    ['conffiles', writeApk(sampleSpec(fresh(), { conffilesStatic: `/etc/config/ugate ${'0'.repeat(64)}\n` }))],
    ['missing-script', writeApk({ ...sampleSpec(fresh()), scripts: {} })],
    [
      'script-no-shebang',
      writeApk({
        ...sampleSpec(fresh()),
        scripts: { ...sampleSpec(fresh()).scripts, 'post-install': Buffer.from('echo\n') },
      }),
    ],
    ['bad-version', writeApk({ ...sampleSpec(fresh()), info: { ...sampleSpec(fresh()).info, version: '0.1.0' } })],
  ]
  for (const [code, file, opts] of cases) {
    t.throws(() => readApk(file, opts ?? {}), { code }, code)
  }
})

t.test('fixed-seed fuzz: truncations and bit flips give ApkError, never anything else', async (t) => {
  let seed = 0x5eed1234
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed % n
  }
  const outcome = (f: () => unknown) => {
    try {
      f()
      return 'ok'
    } catch (e) {
      return e instanceof ApkError ? 'apk-error' : `other: ${(e as Error).stack}`
    }
  }
  const tally = { file: { ok: 0, err: 0, other: [] as string[] }, stream: { ok: 0, err: 0, other: [] as string[] } }
  const record = (where: 'file' | 'stream', r: string) => {
    if (r === 'ok') tally[where].ok++
    else if (r === 'apk-error') tally[where].err++
    else tally[where].other.push(r)
  }
  for (let i = 0; i < 300; i++) {
    record(
      'file',
      outcome(() => readApk(sample.subarray(0, rnd(sample.length)))),
    )
    record(
      'stream',
      outcome(() => readApkStream(stream.subarray(0, rnd(stream.length)))),
    )
  }
  for (let i = 0; i < 1500; i++) {
    const f = Buffer.from(sample)
    f[rnd(f.length)] ^= 1 << rnd(8)
    record(
      'file',
      outcome(() => readApk(f)),
    )
    const s = Buffer.from(stream)
    s[rnd(s.length)] ^= 1 << rnd(8)
    record(
      'stream',
      outcome(() => readApkStream(s)),
    )
  }
  t.same(tally.file.other, [], 'compressed file: only ApkError')
  t.same(tally.stream.other, [], 'decompressed stream: only ApkError')
  t.equal(tally.stream.ok, 0, 'every truncation or flipped bit of the stream is caught (hashes cover every byte)')
  t.ok(
    tally.file.err >= 1790,
    `compressed file: ${tally.file.err} of 1800 rejected (${tally.file.ok} flips deflate ignores)`,
  )
})
