// docs/architecture.md's source map must stay true: one row per file of
// src/ and native/ (as git tracks them), and every path the doc names must
// exist, so a file added, moved or removed without its row fails here.

import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import t from 'tap'
import { repoRoot } from '../lib/ugate.js'

const doc = readFileSync(resolve(repoRoot, 'docs/architecture.md'), 'utf8')

const git = spawnSync('git', ['ls-files', 'src', 'native'], { cwd: repoRoot, encoding: 'utf8' })
const tracked = git.stdout.split('\n').filter((f) => f !== '')

/** The first cell of each source-map row: | `path` | job | */
const rows = [...doc.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!)

/** Every backticked token that looks like a repository path (build outputs and absolute paths excluded). */
const named = [...doc.matchAll(/`([^`\s]+)`/g)]
  .map((m) => m[1]!)
  .filter((p) => p.includes('/') && !p.startsWith('/') && !p.startsWith('build/') && !p.includes(':'))

t.equal(git.status, 0, `git ls-files works: ${git.stderr}`)
t.ok(tracked.length > 50, `git lists the sources (${tracked.length})`)

t.test('every file in src/ and native/ has exactly one row', async (t) => {
  for (const f of tracked) t.equal(rows.filter((r) => r === f).length, 1, f)
})

t.test('every row names one tracked file (no wildcard, no stale row)', async (t) => {
  const known = new Set(tracked)
  for (const r of rows.filter((r) => r.startsWith('src/') || r.startsWith('native/')))
    t.ok(known.has(r), `row ${r} is a tracked file`)
})

t.test('every path the doc names exists', async (t) => {
  t.ok(named.length > tracked.length, `paths found (${named.length})`)
  for (const p of new Set(named)) t.ok(existsSync(resolve(repoRoot, p)), p)
})
