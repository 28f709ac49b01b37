import { createI18n } from 'vue-i18n'
import en from './en'
import zhCN from './zh-CN'
import { storedLocale } from '@/stores/settings'

export const messages = { 'zh-CN': zhCN, en }

export const i18n = createI18n({
  legacy: false,
  locale: storedLocale(),
  fallbackLocale: 'en',
  messages,
})
