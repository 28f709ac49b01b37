/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'
import { fileURLToPath, URL } from 'node:url'

// The console is served by the platform at "/" with an SPA fallback, so every asset is
// bundled (no CDN: operator networks have no internet) and routes are lazy chunks.
export default defineConfig({
  // Element Plus components (and their CSS) are imported where a template uses them, so each
  // lazily loaded page carries only its own widgets.
  plugins: [vue(), Components({ resolvers: [ElementPlusResolver({ importStyle: 'css' })], dts: false })],
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  build: {
    outDir: '../xueliang/web_dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        manualChunks(id) {
          if (!id.includes('node_modules')) return undefined
          if (id.includes('echarts') || id.includes('zrender')) return 'echarts'
          if (id.includes('leaflet') || id.includes('topojson')) return 'leaflet'
          if (id.includes('mpegts')) return 'mpegts'
          if (id.includes('world-atlas')) return 'worldmap'
          if (/node_modules\/(@vue|vue|vue-router|pinia|vue-i18n|@intlify)\//.test(id)) return 'vue'
          return undefined // Element Plus and the rest: split by the pages that use them
        },
      },
    },
  },
  server: {
    proxy: {
      '/api': { target: process.env.XUELIANG_URL || 'http://127.0.0.1:8080', changeOrigin: true, ws: true },
      '/live': { target: process.env.XUELIANG_URL || 'http://127.0.0.1:8080', changeOrigin: true, ws: true },
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/unit/**/*.test.ts'],
  },
})
