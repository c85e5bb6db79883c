export { startCaddy } from './caddy';
export { requireBinary, type TlsServer } from './common';
export { startHaproxy } from './haproxy';
export { startNginx } from './nginx';
