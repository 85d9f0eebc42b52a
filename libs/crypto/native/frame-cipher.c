/*
 * SecureChannel v1's data-frame construction in one call per frame, on Node's own OpenSSL
 * (the symbols the node binary exports; nothing else is linked):
 *
 *   ciphertext = ChaCha20-Poly1305(k_enc, nonce = 0^4 || counter, ad = header, plaintext)
 *   mac        = HMAC-SHA256(k_mac, header || ciphertext || counter)
 *
 * The counter is the 8 bytes at `counterOffset` inside the header. From JavaScript the same
 * composition costs an OpenSSL (or libsodium) call per primitive, each with its own argument
 * checks and buffers; here one call does all of it (libs/crypto/src/frame-cipher.ts, README).
 *
 * HMAC keys arrive as the SHA-256 states after the key's inner and outer pad blocks (RFC 2104),
 * computed once per key by hmacKey(): per frame that saves two of the hash's compressions.
 * The JavaScript wrapper checks every argument; the checks here are the backstop.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final: the only OpenSSL 3 API whose state can be copied as bytes */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#define KEY_BYTES 32
#define TAG_BYTES 16
#define MAC_BYTES 32
#define COUNTER_BYTES 8
#define STATES_BYTES (2 * sizeof(SHA256_CTX))

/* One cipher context per Node environment (main thread, each worker): never shared across threads. */
typedef struct {
  EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *ctx;
} Instance;

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Instance *instance = data;
  EVP_CIPHER_CTX_free(instance->ctx);
  EVP_CIPHER_free(instance->cipher);
  free(instance);
}

static napi_value throw_error(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

static int bytes_arg(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, (void **)data, &buffer, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  if (*length == 0) *data = NULL;
  return 1;
}

static int u32_arg(napi_env env, napi_value value, uint32_t *out) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_number && napi_get_value_uint32(env, value, out) == napi_ok;
}

static int overlaps(const uint8_t *a, size_t a_length, const uint8_t *b, size_t b_length) {
  if (a == NULL || b == NULL || a_length == 0 || b_length == 0) return 0;
  return a < b + b_length && b < a + a_length;
}

static void nonce_of(const uint8_t *counter, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  memcpy(nonce + 4, counter, COUNTER_BYTES);
}

/* HMAC-SHA256 of a || b from the key's precomputed pad states. */
static void hmac(const uint8_t *states, const uint8_t *a, size_t a_length, const uint8_t *b, size_t b_length, uint8_t out[MAC_BYTES]) {
  SHA256_CTX ctx;
  uint8_t inner[SHA256_DIGEST_LENGTH];
  memcpy(&ctx, states, sizeof ctx);
  SHA256_Update(&ctx, a, a_length);
  SHA256_Update(&ctx, b, b_length);
  SHA256_Final(inner, &ctx);
  memcpy(&ctx, states + sizeof ctx, sizeof ctx);
  SHA256_Update(&ctx, inner, sizeof inner);
  SHA256_Final(out, &ctx);
  OPENSSL_cleanse(&ctx, sizeof ctx);
  OPENSSL_cleanse(inner, sizeof inner);
}

/* hmacKey(key: Uint8Array (<= 64 bytes)): Uint8Array — the inner and outer SHA-256 states. */
static napi_value hmac_key(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint8_t *key;
  size_t key_length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || !bytes_arg(env, argv[0], &key, &key_length) ||
      key_length > SHA256_CBLOCK) {
    return throw_error(env, "E_KEY", "frame cipher hmacKey: expected a key of at most 64 bytes");
  }
  uint8_t pad[SHA256_CBLOCK];
  SHA256_CTX states[2];
  for (int i = 0; i < 2; i++) {
    memset(pad, i == 0 ? 0x36 : 0x5c, sizeof pad);
    for (size_t j = 0; j < key_length; j++) pad[j] ^= key[j];
    SHA256_Init(&states[i]);
    SHA256_Update(&states[i], pad, sizeof pad);
  }
  OPENSSL_cleanse(pad, sizeof pad);
  void *data;
  napi_value buffer, result;
  if (napi_create_arraybuffer(env, sizeof states, &data, &buffer) != napi_ok) {
    OPENSSL_cleanse(states, sizeof states);
    return throw_error(env, "E_PROVIDER", "frame cipher hmacKey: out of memory");
  }
  memcpy(data, states, sizeof states);
  OPENSSL_cleanse(states, sizeof states);
  napi_create_typedarray(env, napi_uint8_array, sizeof states, buffer, 0, &result);
  return result;
}

/*
 * Both calls take (encKey, macStates, frame, headerLength, counterOffset, data), where `data`
 * is the plaintext (seal reads it, open writes it): the frame is header || data's ciphertext
 * || tag || mac, exactly, and data lies outside it.
 */
typedef struct {
  Instance *instance;
  uint8_t *key, *states, *frame, *data;
  size_t frame_length, data_length;
  uint32_t header_length, counter_offset;
} FrameCall;

/* Reads and checks the arguments; on failure throws (named after `what`) and returns 0. */
static int frame_call(napi_env env, napi_callback_info info, const char *what, FrameCall *call) {
  size_t argc = 6;
  napi_value argv[6];
  size_t key_length, states_length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || napi_get_instance_data(env, (void **)&call->instance) != napi_ok || argc != 6 ||
      !bytes_arg(env, argv[0], &call->key, &key_length) || key_length != KEY_BYTES || !bytes_arg(env, argv[1], &call->states, &states_length) ||
      states_length != STATES_BYTES || !bytes_arg(env, argv[2], &call->frame, &call->frame_length) || !u32_arg(env, argv[3], &call->header_length) ||
      !u32_arg(env, argv[4], &call->counter_offset) || !bytes_arg(env, argv[5], &call->data, &call->data_length)) {
    char message[160];
    snprintf(message, sizeof message, "frame cipher %s: expected (32-byte key, mac states, frame, header length, counter offset, plaintext)", what);
    throw_error(env, "E_KEY", message);
    return 0;
  }
  if ((size_t)call->counter_offset + COUNTER_BYTES > call->header_length || call->data_length > INT_MAX - TAG_BYTES ||
      (size_t)call->header_length + call->data_length + TAG_BYTES + MAC_BYTES != call->frame_length ||
      overlaps(call->frame, call->frame_length, call->data, call->data_length)) {
    char message[160];
    snprintf(message, sizeof message, "frame cipher %s: the frame is not header + plaintext + tag + mac long, or overlaps the plaintext", what);
    throw_error(env, "E_LENGTH", message);
    return 0;
  }
  return 1;
}

/* seal(...): undefined. Writes ciphertext, tag and mac after the header already in `frame`. */
static napi_value seal(napi_env env, napi_callback_info info) {
  FrameCall call;
  if (!frame_call(env, info, "seal", &call)) return NULL;
  uint8_t nonce[12];
  nonce_of(call.frame + call.counter_offset, nonce);
  uint8_t *ciphertext = call.frame + call.header_length;
  EVP_CIPHER_CTX *ctx = call.instance->ctx;
  int written;
  int ok = EVP_EncryptInit_ex2(ctx, call.instance->cipher, call.key, nonce, NULL) &&
           EVP_EncryptUpdate(ctx, NULL, &written, call.frame, (int)call.header_length) &&
           (call.data_length == 0 || EVP_EncryptUpdate(ctx, ciphertext, &written, call.data, (int)call.data_length)) &&
           EVP_EncryptFinal_ex(ctx, ciphertext + call.data_length, &written) &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, ciphertext + call.data_length);
  if (!ok) return throw_error(env, "E_PROVIDER", "frame cipher seal: OpenSSL ChaCha20-Poly1305 failed");
  size_t body_end = call.header_length + call.data_length + TAG_BYTES;
  hmac(call.states, call.frame, body_end, call.frame + call.counter_offset, COUNTER_BYTES, call.frame + body_end);
  return NULL;
}

/*
 * open(...): 0 once the mac (compared in constant time, checked first) and the Poly1305 tag
 * both verify and `data` holds the plaintext; 1 when the mac does not verify (nothing is
 * written), 2 when the tag does not (what was decrypted is wiped).
 */
static napi_value open_frame(napi_env env, napi_callback_info info) {
  FrameCall call;
  if (!frame_call(env, info, "open", &call)) return NULL;
  size_t body_end = call.frame_length - MAC_BYTES;
  napi_value result;
  uint8_t mac[MAC_BYTES];
  hmac(call.states, call.frame, body_end, call.frame + call.counter_offset, COUNTER_BYTES, mac);
  int mac_ok = CRYPTO_memcmp(mac, call.frame + body_end, MAC_BYTES) == 0;
  OPENSSL_cleanse(mac, sizeof mac);
  if (!mac_ok) {
    napi_create_uint32(env, 1, &result);
    return result;
  }
  uint8_t nonce[12];
  nonce_of(call.frame + call.counter_offset, nonce);
  const uint8_t *ciphertext = call.frame + call.header_length;
  uint8_t tag[TAG_BYTES];
  memcpy(tag, ciphertext + call.data_length, TAG_BYTES);
  EVP_CIPHER_CTX *ctx = call.instance->ctx;
  uint8_t final_block[1];
  int written;
  int ok = EVP_DecryptInit_ex2(ctx, call.instance->cipher, call.key, nonce, NULL) &&
           EVP_DecryptUpdate(ctx, NULL, &written, call.frame, (int)call.header_length) &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) &&
           (call.data_length == 0 || EVP_DecryptUpdate(ctx, call.data, &written, ciphertext, (int)call.data_length)) &&
           EVP_DecryptFinal_ex(ctx, final_block, &written) > 0;
  if (!ok && call.data_length > 0) OPENSSL_cleanse(call.data, call.data_length);
  napi_create_uint32(env, ok ? 0 : 2, &result);
  return result;
}

NAPI_MODULE_INIT() {
  Instance *instance = calloc(1, sizeof *instance);
  if (instance == NULL) return throw_error(env, "E_PROVIDER", "frame cipher: out of memory");
  instance->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  instance->ctx = EVP_CIPHER_CTX_new();
  if (instance->cipher == NULL || instance->ctx == NULL) {
    free_instance(env, instance, NULL);
    return throw_error(env, "E_UNAVAILABLE", "frame cipher: this OpenSSL has no ChaCha20-Poly1305");
  }
  if (napi_set_instance_data(env, instance, free_instance, NULL) != napi_ok) {
    free_instance(env, instance, NULL);
    return throw_error(env, "E_PROVIDER", "frame cipher: cannot keep per-environment state");
  }
  napi_property_descriptor functions[] = {
      {"hmacKey", NULL, hmac_key, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seal", NULL, seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, open_frame, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}
