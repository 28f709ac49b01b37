import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { setUnauthorizedHandler } from '@/api'
import { clearToken } from '@/api/token'
import { useAuthStore } from '@/stores/auth'
import { useEventsStore } from '@/stores/events'
import type { Role } from '@/lib/roles'

declare module 'vue-router' {
  interface RouteMeta { title?: string; public?: boolean; role?: Role }
}

// Every page is its own chunk: the map (Leaflet + outline data) and the player (mpegts.js)
// are only fetched by operators who open them.
const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('@/views/LoginView.vue'), meta: { public: true } },
  {
    path: '/',
    component: () => import('@/layouts/MainLayout.vue'),
    children: [
      { path: '', redirect: '/dashboard' },
      { path: 'dashboard', name: 'dashboard', component: () => import('@/views/DashboardView.vue'), meta: { title: 'nav.dashboard' } },
      { path: 'live', name: 'live', component: () => import('@/views/LiveView.vue'), meta: { title: 'nav.live' } },
      { path: 'map', name: 'map', component: () => import('@/views/MapView.vue'), meta: { title: 'nav.map' } },
      { path: 'devices', name: 'devices', component: () => import('@/views/DevicesView.vue'), meta: { title: 'nav.devices' } },
      { path: 'alarms', name: 'alarms', component: () => import('@/views/AlarmsView.vue'), meta: { title: 'nav.alarms' } },
      { path: 'positions', name: 'positions', component: () => import('@/views/PositionsView.vue'), meta: { title: 'nav.positions' } },
      { path: ':pathMatch(.*)*', name: 'notfound', component: () => import('@/views/NotFoundView.vue'), meta: { title: 'errors.notFound' } },
    ],
  },
]

export const router = createRouter({ history: createWebHistory(), routes })

setUnauthorizedHandler(() => {
  clearToken()
  useEventsStore().disconnect()
  const auth = useAuthStore()
  auth.logout()
  const cur = router.currentRoute.value
  if (cur.name !== 'login') router.replace({ name: 'login', query: { redirect: cur.fullPath } })
})

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  const auth = useAuthStore()
  if (!auth.loggedIn) return { name: 'login', query: { redirect: to.fullPath } }
  if (!auth.me) {
    try {
      await auth.loadMe()
    } catch {
      if (!auth.loggedIn) return { name: 'login', query: { redirect: to.fullPath } }
    }
  }
  return true
})
