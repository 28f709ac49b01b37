/**
 * Role ranks, mirroring the server's rule (xueliang/security/rights.py): a check names the
 * lowest role allowed and higher roles pass. The server enforces; the console only hides
 * controls that would answer 403 anyway.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const
export type Role = (typeof ROLES)[number]

export function allows(userRole: string | null | undefined, needed: Role): boolean {
  const have = ROLES.indexOf((userRole ?? '') as Role)
  if (have < 0) return false
  return have >= ROLES.indexOf(needed)
}
