import { describe, expect, it } from 'vitest'
import { formatSize, parseSize, SizeError } from '../../crdt/index.ts'

const KiB = 1024
const MiB = 1024 ** 2
const GiB = 1024 ** 3

describe('parseSize accepts', () => {
  it.each([
    ['0', 0],
    ['1048576', 1048576],
    ['1048576B', 1048576],
    ['512KiB', 512 * KiB],
    ['512MiB', 512 * MiB],
    ['2GiB', 2 * GiB],
    ['1.5GiB', 1.5 * GiB],
    ['1TiB', 1024 * GiB],
    ['512Mi', 512 * MiB],
    ['2Gi', 2 * GiB],
    ['4Ki', 4 * KiB],
    ['1.5GB', 1_500_000_000],
    ['1.5kB', 1500],
    ['2MB', 2_000_000],
    ['1TB', 1e12],
    ['2G', 2e9],
    ['100M', 100e6],
    ['3k', 3000],
    [' 2 GiB ', 2 * GiB],
    ['0.5KiB', 512]
  ])('%j → %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes)
  })
})

describe('parseSize refuses', () => {
  it.each([
    ['', /empty size/],
    ['   ', /empty size/],
    ['-1GiB', /negative/],
    ['-5', /negative/],
    ['1.5', /fractional number of bytes/],
    ['1.3KiB', /fractional number of bytes/],
    ['0.1B', /fractional number of bytes/],
    ['512m', /milli/],
    ['12XB', /unknown unit 'XB'/],
    ['1KB', /ambiguous/],
    ['1K', /ambiguous/],
    ['8b', /bits/],
    ['1e9', /malformed size '1e9'/],
    ['GiB', /malformed/],
    ['1..5GiB', /malformed/],
    ['0x10', /malformed size/],
    ['0toString', /unknown unit 'toString'/],
    ['1constructor', /unknown unit 'constructor'/],
    ['99999999PiB', /too large/]
  ])('%j with a message naming the problem and the accepted forms', (text, message) => {
    let error: unknown
    try { parseSize(text) } catch (e) { error = e }
    expect(error).toBeInstanceOf(SizeError)
    expect((error as SizeError).name).toBe('SizeError')
    expect((error as SizeError).message).toMatch(message)
    if (!/too large/.test(String(message))) expect((error as SizeError).message).toMatch(/accepted: .*MiB.*Gi.*GB/)
  })

  it('refuses a non-string', () => {
    expect(() => parseSize(42 as unknown as string)).toThrow(SizeError)
  })
})

describe('formatSize', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1.00 KiB'],
    [12_341_234, '11.77 MiB'],
    [2 * GiB, '2.00 GiB'],
    [1.5 * GiB, '1.50 GiB'],
    [-GiB, '-1.00 GiB'],
    [3 * 1024 * GiB, '3.00 TiB']
  ])('%d → %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text)
  })

  it('round-trips through parseSize for whole IEC units', () => {
    for (const bytes of [KiB, MiB, 7 * GiB]) {
      expect(parseSize(formatSize(bytes).replace(' ', '').replace('.00', ''))).toBe(bytes)
    }
  })
})
