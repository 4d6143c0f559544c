// `ugate run` with a mesh section: the identity is loaded at start (its
// SPIFFE id and node id logged), an expired certificate stops the start with
// a message naming the file and the date, and so does a not yet valid one;
// SIGHUP with a broken, expired or not yet valid identity file keeps the
// identity in use (logged, the dated ones with their file and date) while the
// rest of the config applies,
// and SIGHUP with a new identity switches to it. No fd or memory leak (ASan).

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { EXPIRED_ON, NOT_VALID_BEFORE, issueIdentity, readIdentity } from '../lib/hbone.js'
import { checkCleanExit, runUgate, startUgate } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

/** `ugate identity init` into dir/name; returns the directory and the node id it printed. */
function init(t: Test, dir: string, name: string, sa: string): { dir: string; nodeId: string } {
  const d = join(dir, name)
  mkdirSync(d)
  const r = runUgate(['identity', 'init', '--dir', d, '--trust-domain', 'mesh.test', '--sa', sa])
  t.equal(r.code, 0, `identity init ${name}`, { stderr: r.stderr })
  return { dir: d, nodeId: /node id: (\w+)/.exec(r.stdout)![1]! }
}

function config(file: string, identityDir: string, more: Record<string, unknown> = {}): void {
  writeFileSync(
    file,
    JSON.stringify({
      listeners: [{ name: 'fwd', type: 'forward', listen: '127.0.0.1:0', target: '127.0.0.1:9' }],
      mesh: { identityDir, trustDomain: 'mesh.test', ...more },
    }),
  )
}

/** `identity init`'s CA (in id.dir) as issueIdentity takes it. */
const caOf = (id: { dir: string }) => readIdentity(id.dir, 'spiffe://mesh.test/ns/default/sa/router1')

/** The dated identities issueIdentity makes, and the message ugate gives for each (its date in it). */
const dated = [
  { what: 'an expired', opts: { expired: true }, says: `certificate expired on ${EXPIRED_ON} (now ` },
  {
    what: 'a not yet valid',
    opts: { notYetValid: true },
    says: `certificate is not valid before ${NOT_VALID_BEFORE} (now `,
  },
]

for (const d of dated)
  t.test(`${d.what} certificate stops the start, naming the file and the date`, async (t) => {
    const dir = tempDir(t, 'ugate-mesh-')
    const ca = init(t, dir, 'id', 'router1')
    const id = issueIdentity(t, caOf(ca), 'mesh.test', 'router1', { ns: 'default', ...d.opts })
    const file = join(dir, 'ugate.json')
    // The files named one by one (outside identityDir): the message names the one given.
    config(file, ca.dir, { certChain: id.cert, key: id.key, rootCert: id.root })
    const r = runUgate(['run', '--config', file])
    t.equal(r.code, 1, 'exit 1')
    t.ok(
      r.stderr.some((l) => l.includes(`ugate: mesh identity: ${id.cert}: ${d.says}`)),
      'the message names the file and the date',
      { stderr: r.stderr },
    )
    t.notOk(
      r.stderr.some((l) => / info ready /.test(l)),
      'never ready',
    )
  })

t.test('SIGHUP: a broken identity keeps the one in use; a new one replaces it', async (t) => {
  const dir = tempDir(t, 'ugate-mesh-')
  const a = init(t, dir, 'a', 'router1')
  const b = init(t, dir, 'b', 'router2')
  const live = join(dir, 'live')
  mkdirSync(live)
  for (const f of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) copyFileSync(join(a.dir, f), join(live, f))
  const file = join(dir, 'ugate.json')
  config(file, live)
  const ug = await startUgate(t, ['run', '--config', file])
  t.equal(
    ug.matching(
      new RegExp(` info mesh-identity spiffeId=spiffe://mesh\\.test/ns/default/sa/router1 nodeId=${a.nodeId}$`),
    ).length,
    1,
    'identity a in the log at start, with the node id `identity init` printed',
  )

  // Broken: the chain file is not PEM. The reload still applies the rest (one more listener).
  writeFileSync(join(live, 'cert-chain.pem'), 'garbage\n')
  const two = JSON.stringify({
    listeners: [
      { name: 'fwd', type: 'forward', listen: '127.0.0.1:0', target: '127.0.0.1:9' },
      { name: 'more', type: 'forward', listen: '127.0.0.1:0', target: '127.0.0.1:9' },
    ],
    mesh: { identityDir: live, trustDomain: 'mesh.test' },
  })
  writeFileSync(file, two)
  ug.signal('SIGHUP')
  const failed = await ug.waitForLine(/ error mesh-reload-failed /)
  t.match(failed, `error="${live}/cert-chain.pem: no PEM certificate in it"`, 'the error names the file')
  t.match(failed, /kept=spiffe:\/\/mesh\.test\/ns\/default\/sa\/router1/, 'the identity in use is kept')
  await ug.waitForLine(/ info reloaded listeners=2 /)
  t.equal(ug.matching(/ info mesh-identity /).length, 1, 'no new identity logged')

  // Expired, then not yet valid: refused on reload as at start, naming the file and the date.
  let failures = 1
  for (const d of dated) {
    const id = issueIdentity(t, caOf(a), 'mesh.test', 'router1', { ns: 'default', ...d.opts })
    for (const f of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) copyFileSync(join(id.dir, f), join(live, f))
    ug.signal('SIGHUP')
    const late = (await ug.waitForLines(/ error mesh-reload-failed /, ++failures))[failures - 1]!
    t.match(late, `error="${live}/cert-chain.pem: ${d.says}`, `${d.what} certificate on reload: the file and the date`)
    t.match(late, /kept=spiffe:\/\/mesh\.test\/ns\/default\/sa\/router1/, 'the identity in use is kept')
    await ug.waitForLines(/ info reloaded listeners=2 /, failures)
  }
  t.equal(ug.matching(/ info mesh-identity /).length, 1, 'no new identity logged')
  t.equal(ug.exitResult, null, 'still running, on the identity it had')

  // A new identity (b): logged as reloaded.
  for (const f of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) copyFileSync(join(b.dir, f), join(live, f))
  ug.signal('SIGHUP')
  const now = await ug.waitForLine(/ info mesh-identity .*reloaded=true/)
  t.match(now, `spiffeId=spiffe://mesh.test/ns/default/sa/router2 nodeId=${b.nodeId}`)
  await ug.waitForLines(/ info reloaded listeners=2 /, failures + 1)
  checkCleanExit(t, ug, await ug.stop())
})
