import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, type Me } from '@/api'
import { clearToken, getToken, setToken } from '@/api/token'
import { allows, type Role } from '@/lib/roles'

/** Who is logged in and what they may do; the token itself lives in web storage. */
export const useAuthStore = defineStore('auth', () => {
  const token = ref<string | null>(getToken())
  const me = ref<Me | null>(null)

  const loggedIn = computed(() => !!token.value)
  const role = computed(() => me.value?.role ?? null)

  async function login(username: string, password: string, remember: boolean): Promise<void> {
    const r = await api.login(username, password)
    setToken(r.access_token, remember)
    token.value = r.access_token
    me.value = null
    await loadMe()
  }

  async function loadMe(): Promise<Me | null> {
    if (!token.value) return null
    me.value = await api.me()
    return me.value
  }

  function logout(): void {
    clearToken()
    token.value = null
    me.value = null
  }

  function can(needed: Role): boolean {
    return allows(role.value, needed)
  }

  return { token, me, role, loggedIn, login, loadMe, logout, can }
})
