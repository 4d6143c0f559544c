// Shared by the package tests (test/package/*-packages.ts): run a package
// build script, and the time stamp it gives every file.

import { spawn, spawnSync } from 'node:child_process'
import { repoRoot } from './ugate.js'

/** Run SCRIPT (relative to the repository) with ENV added; stderr is kept. */
export function runBuild(script: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(script, [], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    p.stderr!.setEncoding('utf8')
    p.stderr!.on('data', (d: string) => {
      stderr += d
    })
    p.on('close', (status) => res({ status, stderr }))
  })
}

/** SOURCE_DATE_EPOCH as openwrt/lib.sh picks it: the environment's, else the last commit's time. */
export function sourceDateEpoch(): number {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH)
  const r = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: repoRoot, encoding: 'utf8' })
  return Number(r.stdout.trim())
}
