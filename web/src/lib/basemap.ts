/**
 * The offline base map: country outlines from Natural Earth (world-atlas, bundled as its own
 * lazily loaded chunk) and a graticule. Operator networks reach no tile server; a PGIS XYZ
 * URL can replace this from the map's settings.
 */
import L from 'leaflet'
import { feature } from 'topojson-client'

const STEPS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30]

/** A round grid step giving about `lines` lines across `span` degrees. */
export function graticuleStep(span: number, lines = 8): number {
  const raw = span / lines
  return STEPS.find((s) => s >= raw) ?? 30
}

/**
 * Latitude/longitude grid redrawn for the current view, with a step that suits the zoom: on the
 * offline base it is what gives a street-level view its sense of place and scale.
 */
export function graticule(map: L.Map): L.LayerGroup {
  const g = L.layerGroup()
  const style = { color: '#64748b', weight: 0.6, opacity: 0.45, interactive: false, dashArray: '4 4' }
  const label = (text: string, at: L.LatLngExpression, cls: string) =>
    L.marker(at, { interactive: false, keyboard: false, icon: L.divIcon({ className: `xl-grat ${cls}`, html: text, iconSize: [80, 14], iconAnchor: cls === 'lng' ? [-3, 30] : [-3, 14] }) })
  const draw = () => {
    g.clearLayers()
    const b = map.getBounds()
    const west = Math.max(-180, b.getWest())
    const east = Math.min(180, b.getEast())
    const south = Math.max(-85, b.getSouth())
    const north = Math.min(85, b.getNorth())
    const step = graticuleStep(Math.max(east - west, north - south))
    const digits = Math.max(0, -Math.floor(Math.log10(step)))
    for (let lng = Math.ceil(west / step) * step; lng <= east; lng += step) {
      g.addLayer(L.polyline([[south, lng], [north, lng]], style))
      g.addLayer(label(`${lng.toFixed(digits)}°`, [south, lng], 'lng'))
    }
    for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
      g.addLayer(L.polyline([[lat, west], [lat, east]], style))
      g.addLayer(label(`${lat.toFixed(digits)}°`, [lat, west], 'lat'))
    }
  }
  map.on('moveend', draw)
  draw()
  return g
}

export async function outlineLayer(): Promise<L.GeoJSON> {
  const topo: any = (await import('world-atlas/countries-50m.json')).default
  const geo = feature(topo, topo.objects.countries) as any
  return L.geoJSON(geo, {
    interactive: false,
    style: () => ({ color: '#64748b', weight: 0.8, fillColor: '#e2e8f0', fillOpacity: 1 }),
  })
}

/** Bounding box for the clusters endpoint, clamped to what the API accepts. */
export function bboxOf(b: L.LatLngBounds): { west: number; south: number; east: number; north: number } {
  const c = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v))
  const round = (v: number) => Math.round(v * 1e6) / 1e6
  return {
    west: round(c(b.getWest(), -180, 180)),
    south: round(c(b.getSouth(), -90, 90)),
    east: round(c(b.getEast(), -180, 180)),
    north: round(c(b.getNorth(), -90, 90)),
  }
}
