import { onMounted, onUnmounted, ref } from 'vue'

/** True on phone-sized screens: the nav becomes a drawer and the live grid one column. */
export function useNarrow(maxWidth = 768) {
  const q = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia(`(max-width: ${maxWidth}px)`) : null
  const narrow = ref(q ? q.matches : false)
  const on = (e: MediaQueryListEvent) => { narrow.value = e.matches }
  onMounted(() => q?.addEventListener('change', on))
  onUnmounted(() => q?.removeEventListener('change', on))
  return narrow
}
