/** The payloads of httpsok's OpenAPI documentation (https://openapi.httpsok.com), verbatim. */

export const verifyValidEnvelope = {
  code: 0,
  msg: 'success',
  data: {
    configs: [
      {
        domain: '*.httpsok.com',
        host: '_acme-challenge',
        hostValue: '68bf0af7b3854cdd.httpsok.com',
        valid: true,
      },
    ],
    valid: true,
  },
  traceId: '684c741fdb871fdd218c78b8ba438252',
};

export const verifyInvalidEnvelope = {
  code: 0,
  msg: 'success',
  data: {
    configs: [
      {
        domain: '*.baidu.com',
        host: '_acme-challenge',
        hostValue: 'e9e40d3bf04d9c74.httpsok.com',
        valid: false,
      },
    ],
    valid: false,
  },
  traceId: 'b60de4b59b6f4aa179b946e31694544e',
};

export const applyEnvelope = {
  code: 0,
  msg: 'success',
  data: '236417',
  traceId: 'e9fb0dd488529912085f304dde3b9d6d',
};

export const issuedData = {
  id: 236417,
  status: 1,
  algorithm: 'ECC',
  ca: 'google',
  name: '*.httpsok.com',
  domains: '*.httpsok.com,httpsok.com',
  notBefore: '2024-12-11 00:24:32',
  notAfter: '2025-03-11 00:24:31',
  certificate: '-----BEGIN CERTIFICATE-----\nMIIEc******AgIbCgj8=\n-----END CERTIFICATE-----\n',
  privateKey: '-----BEGIN EC PRIVATE KEY-----\nMHcCA******58jQ==\n-----END EC PRIVATE KEY-----\n',
  fingerprints: '36daaafc34e7be4f9aa65448bc4f2703e5a5d8234e22ca07489ca061a78f3440',
  progress: 100,
};

export const issuedEnvelope = {
  code: 0,
  msg: 'success',
  data: issuedData,
  traceId: '90cbafed99058a23c8cd08553701164d',
};

export const issuingEnvelope = {
  code: 0,
  msg: 'success',
  data: { id: 236417, status: 2, domains: '*.httpsok.com,httpsok.com', progress: 75 },
  traceId: '9f26694a6045a300a63b3bde621184a9',
};

/** The issued callback: the issued `data` without an envelope. */
export const callbackBody = issuedData;
