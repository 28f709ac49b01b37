import { defineStore } from 'pinia'
import { ref, watch } from 'vue'

const LOCALE_KEY = 'xl.locale'
const TILE_KEY = 'xl.tileUrl'

export type Locale = 'zh-CN' | 'en'

export function storedLocale(): Locale {
  const v = localStorage.getItem(LOCALE_KEY)
  return v === 'en' ? 'en' : 'zh-CN'
}

/** Console preferences kept in this browser (no server round trip). */
export const useSettingsStore = defineStore('settings', () => {
  const locale = ref<Locale>(storedLocale())
  /** XYZ tile template such as a PGIS server's; empty = the offline vector base shipped with the console. */
  const tileUrl = ref<string>(localStorage.getItem(TILE_KEY) ?? '')
  watch(locale, (v) => localStorage.setItem(LOCALE_KEY, v))
  watch(tileUrl, (v) => (v ? localStorage.setItem(TILE_KEY, v) : localStorage.removeItem(TILE_KEY)))
  return { locale, tileUrl }
})
