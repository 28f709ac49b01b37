/**
 * The offline base map: country outlines from Natural Earth (world-atlas, bundled as its own
 * lazily loaded chunk) and a graticule. Operator networks reach no tile server; a PGIS XYZ
 * URL can replace this from the map's settings.
 */
import L from 'leaflet'
import { feature } from 'topojson-client'

export function graticule(step = 10): L.LayerGroup {
  const g = L.layerGroup()
  const style = { color: '#94a3b8', weight: 0.5, opacity: 0.5, interactive: false }
  for (let lng = -180; lng <= 180; lng += step) g.addLayer(L.polyline([[-85, lng], [85, lng]], style))
  for (let lat = -80; lat <= 80; lat += step) g.addLayer(L.polyline([[lat, -180], [lat, 180]], style))
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
