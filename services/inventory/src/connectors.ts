import type { Context } from '@cordon/runtime';
import type { PlatformConnector } from '@cordon/platform';
import { fromUrl as libvirtFromUrl } from '@cordon/libvirt';
import { fromUrl as vsphereFromUrl } from '@cordon/vsphere';
import type { SourceConfig } from './config.js';
import { FileConnector } from './connector-file.js';
import { ERR_INVENTORY_SOURCE } from './errors.js';

/** The connector a source URL names. Credentials come from the source's file or the environment, never the URL. */
export function connectorFor(
  source: SourceConfig,
  ctx: Context,
  env: NodeJS.ProcessEnv = process.env,
): PlatformConnector {
  const url = source.url;
  if (url.startsWith('vsphere+https://')) {
    return vsphereFromUrl(url, {
      ctx,
      env,
      insecure: source.insecure,
      ...(source.credentialsFile ? { credentialsFile: source.credentialsFile } : {}),
      ...(source.caFile ? { caFile: source.caFile } : {}),
    });
  }
  if (url.startsWith('file:')) return new FileConnector({ url, ctx, pollMs: source.pollMs });
  // one source per libvirt host; several hosts are several sources
  if (url.startsWith('libvirt+')) return libvirtFromUrl(url, { ctx });
  throw ERR_INVENTORY_SOURCE(url, 'unknown kind of source (vsphere+https://, libvirt+…, file://)');
}
