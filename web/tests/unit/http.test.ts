import { describe, expect, it, vi } from 'vitest'
import { ApiError, buildQuery, createHttp, errorMessage } from '@/api/http'

function fakeFetch(status: number, body: unknown, calls: Array<{ url: string; init: RequestInit }>) {
  return (async (url: string, init: RequestInit) => {
    calls.push({ url, init })
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    return new Response(status === 204 ? null : text, { status, headers: { 'Content-Type': 'application/json' } })
  }) as unknown as typeof fetch
}

describe('api wrapper', () => {
  it('adds the bearer token and query string, drops empty params', async () => {
    const calls: Array<{ url: string; init: RequestInit }> = []
    const http = createHttp({ base: '/api/v1', getToken: () => 'tok123', onUnauthorized: () => {}, fetchImpl: fakeFetch(200, { items: [], total: 0 }, calls) })
    const r = await http.get<{ total: number }>('/devices', { page: 2, q: '', status: 'online', x: undefined })
    expect(r.total).toBe(0)
    expect(calls[0].url).toBe('/api/v1/devices?page=2&status=online')
    expect((calls[0].init.headers as Record<string, string>).Authorization).toBe('Bearer tok123')
  })

  it('sends no Authorization header without a token', async () => {
    const calls: Array<{ url: string; init: RequestInit }> = []
    const http = createHttp({ getToken: () => null, onUnauthorized: () => {}, fetchImpl: fakeFetch(200, {}, calls) })
    await http.post('/auth/login', { username: 'a', password: 'b' })
    const h = calls[0].init.headers as Record<string, string>
    expect(h.Authorization).toBeUndefined()
    expect(h['Content-Type']).toBe('application/json')
    expect(calls[0].init.body).toBe('{"username":"a","password":"b"}')
  })

  it('calls onUnauthorized exactly once on 401 and rejects with ApiError(401)', async () => {
    const onUnauthorized = vi.fn()
    const http = createHttp({ getToken: () => 'old', onUnauthorized, fetchImpl: fakeFetch(401, { detail: 'expired' }, []) })
    await expect(http.get('/summary')).rejects.toMatchObject({ status: 401 })
    expect(onUnauthorized).toHaveBeenCalledTimes(1)
  })

  it('does not log out on 403 and surfaces the server detail', async () => {
    const onUnauthorized = vi.fn()
    const http = createHttp({ getToken: () => 't', onUnauthorized, fetchImpl: fakeFetch(403, { detail: "role 'viewer' may not do this", code: 'forbidden' }, []) })
    const err: any = await http.post('/channels/1/ptz', {}).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.status).toBe(403)
    expect(err.message).toContain('viewer')
    expect(onUnauthorized).not.toHaveBeenCalled()
  })

  it('answers undefined for 204', async () => {
    const http = createHttp({ getToken: () => 't', onUnauthorized: () => {}, fetchImpl: fakeFetch(204, '', []) })
    expect(await http.del('/devices/1')).toBeUndefined()
  })

  it('reads FastAPI validation errors', () => {
    expect(errorMessage({ detail: [{ msg: 'a' }, { msg: 'b' }] }, 'x')).toBe('a; b')
    expect(errorMessage(null, 'fallback')).toBe('fallback')
    expect(buildQuery({})).toBe('')
  })
})
