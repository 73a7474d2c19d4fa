package gp.launcher;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;
import javax.crypto.spec.SecretKeySpec;

/**
 * Protocol v2 on the launcher's side (docs/protocol.md): sealing the launch message (§4.1) and
 * checking comm-port requests (§7.3). JDK primitives only: RSA-OAEP (SHA-256, MGF1-SHA-256),
 * AES-256-GCM, HMAC-SHA256, SecureRandom.
 */
public final class Protocol {
  public static final int VERSION = 2;
  public static final String LAUNCH_SECRET_ENV = "GP_LAUNCH_SECRET";
  public static final long COMM_REQUEST_MAX_SKEW_MS = 30_000L;
  public static final int MAX_SIGNUM = 64;

  private static final SecureRandom RANDOM = new SecureRandom();

  private Protocol() {}

  public static byte[] associatedData(String kernelId) {
    return ("gp-launch:v" + VERSION + ":" + kernelId).getBytes(StandardCharsets.UTF_8);
  }

  /** The sealed body of §4.3: {@code {"launch_secret": ..., "conn_info": ...}}, pinned form. */
  public static String bodyJson(String launchSecret, Map<String, Object> connInfo) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("launch_secret", launchSecret);
    body.put("conn_info", connInfo);
    return Json.dumps(body);
  }

  /** AES-256-GCM of {@code body} under {@code key} and {@code nonce}: ciphertext ‖ tag. */
  public static byte[] encryptBody(byte[] key, byte[] nonce, String kernelId, String body)
      throws GeneralSecurityException {
    Cipher gcm = Cipher.getInstance("AES/GCM/NoPadding");
    gcm.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(key, "AES"), new GCMParameterSpec(128, nonce));
    gcm.updateAAD(associatedData(kernelId));
    return gcm.doFinal(body.getBytes(StandardCharsets.UTF_8));
  }

  /** The server's RSA key from {@code {public_key}} (base64 DER SubjectPublicKeyInfo). */
  public static PublicKey publicKey(String publicKeyB64) throws GeneralSecurityException {
    byte[] der;
    try {
      der = Base64.getDecoder().decode(publicKeyB64);
    } catch (IllegalArgumentException err) {
      throw new GeneralSecurityException("not base64");
    }
    return KeyFactory.getInstance("RSA").generatePublic(new X509EncodedKeySpec(der));
  }

  /** RSA-OAEP (SHA-256, MGF1 with SHA-256, empty label) of {@code key}. */
  public static byte[] wrapKey(String publicKeyB64, byte[] key) throws GeneralSecurityException {
    PublicKey publicKey = publicKey(publicKeyB64);
    Cipher oaep = Cipher.getInstance("RSA/ECB/OAEPPadding");
    oaep.init(
        Cipher.ENCRYPT_MODE,
        publicKey,
        new OAEPParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT));
    return oaep.doFinal(key);
  }

  /**
   * The v2 launch message: base64 of the envelope JSON, without the newline. {@code aesKey} and
   * {@code nonce} are null except in the test vectors (then they are the vector's).
   */
  public static String seal(
      String publicKeyB64,
      String kernelId,
      String launchSecret,
      Map<String, Object> connInfo,
      byte[] aesKey,
      byte[] nonce)
      throws GeneralSecurityException {
    if (aesKey == null) {
      aesKey = new byte[32];
      RANDOM.nextBytes(aesKey);
    }
    if (nonce == null) {
      nonce = new byte[12];
      RANDOM.nextBytes(nonce);
    }
    byte[] ciphertext = encryptBody(aesKey, nonce, kernelId, bodyJson(launchSecret, connInfo));
    Base64.Encoder b64 = Base64.getEncoder();
    Map<String, Object> envelope = new LinkedHashMap<>();
    envelope.put("version", (long) VERSION);
    envelope.put("kernel_id", kernelId);
    envelope.put("key", b64.encodeToString(wrapKey(publicKeyB64, aesKey)));
    envelope.put("nonce", b64.encodeToString(nonce));
    envelope.put("conn_info", b64.encodeToString(ciphertext));
    return b64.encodeToString(Json.dumps(envelope).getBytes(StandardCharsets.UTF_8));
  }

  /** The signing input of §7.2. */
  public static String signingInput(String kernelId, Object request, long ts, String nonce) {
    Map<String, Object> canonical = new HashMap<>();
    canonical.put("kernel_id", kernelId);
    canonical.put("nonce", nonce);
    canonical.put("request", request);
    canonical.put("ts", ts);
    return Json.canonical(canonical);
  }

  public static String hmacHex(String key, String input) throws GeneralSecurityException {
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(new SecretKeySpec(key.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
    byte[] digest = mac.doFinal(input.getBytes(StandardCharsets.UTF_8));
    StringBuilder hex = new StringBuilder();
    for (byte b : digest) {
      hex.append(String.format("%02x", b & 0xff));
    }
    return hex.toString();
  }

  /** A refused comm request; the reason is a short fixed text, safe to log and to send back. */
  public static final class Refused extends Exception {
    private static final long serialVersionUID = 1L;

    public Refused(String reason) {
      super(reason);
    }
  }

  /**
   * Checks comm-port requests (§7.3): signature, freshness, uniqueness. One per launcher; its
   * {@link #check} is synchronized, as the comm port serves connections on several threads.
   */
  public static final class Verifier {
    static final int MAX_NONCES = 10_000;
    private final String key;
    private final String kernelId;
    private final Map<String, Long> seen = new HashMap<>();

    public Verifier(String connectionKey, String kernelId) {
      this.key = connectionKey;
      this.kernelId = kernelId;
    }

    /**
     * The request a comm line asks for: {@code {"signum": N}} or {@code {"shutdown": 1}}.
     * Throws {@link Refused}, and nothing else, whatever the line holds.
     */
    public synchronized Map<String, Object> check(String line, long nowMs) throws Refused {
      Object parsed;
      try {
        parsed = Json.parse(line);
      } catch (Json.JsonError | RuntimeException err) {
        throw new Refused("not JSON");
      }
      if (!(parsed instanceof Map)) {
        throw new Refused("not a JSON object");
      }
      Map<?, ?> message = (Map<?, ?>) parsed;
      Object request = message.get("request");
      Object ts = message.get("ts");
      Object nonce = message.get("nonce");
      Object signature = message.get("signature");
      if (!(request instanceof Map)
          || !(ts instanceof Long)
          || !(nonce instanceof String)
          || ((String) nonce).length() > 256) {
        throw new Refused("unsigned or incomplete request");
      }
      if (!(signature instanceof String) || !kernelId.equals(message.get("kernel_id"))) {
        throw new Refused("unsigned request or another kernel's request");
      }
      long tsMs = (Long) ts;
      String expected;
      try {
        expected = hmacHex(key, signingInput(kernelId, request, tsMs, (String) nonce));
      } catch (GeneralSecurityException | RuntimeException err) {
        throw new Refused("unsigned or incomplete request");
      }
      if (!MessageDigest.isEqual(
          expected.getBytes(StandardCharsets.UTF_8),
          ((String) signature).getBytes(StandardCharsets.UTF_8))) {
        throw new Refused("bad signature");
      }
      if (Math.abs(nowMs - tsMs) > COMM_REQUEST_MAX_SKEW_MS) {
        throw new Refused("stale request");
      }
      for (Iterator<Long> it = seen.values().iterator(); it.hasNext(); ) {
        if (nowMs - it.next() > 2 * COMM_REQUEST_MAX_SKEW_MS) {
          it.remove();
        }
      }
      if (seen.containsKey(nonce)) {
        throw new Refused("replayed request");
      }
      if (seen.size() >= MAX_NONCES) {
        throw new Refused("too many requests");
      }
      seen.put((String) nonce, tsMs);
      Map<?, ?> inner = (Map<?, ?>) request;
      Map<String, Object> result = new LinkedHashMap<>();
      Object shutdown = inner.get("shutdown");
      if (shutdown != null && truthy(shutdown)) {
        result.put("shutdown", 1L);
        return result;
      }
      Object signum = inner.get("signum");
      if (!(signum instanceof Long) || (Long) signum < 0 || (Long) signum > MAX_SIGNUM) {
        throw new Refused("no valid signum");
      }
      result.put("signum", signum);
      return result;
    }

    /** Python's truth value of a JSON value (the Python launcher tests {@code if shutdown}). */
    private static boolean truthy(Object value) {
      if (value == Json.NULL || Boolean.FALSE.equals(value)) {
        return false;
      }
      if (value instanceof Long) {
        return (Long) value != 0L;
      }
      if (value instanceof Double) {
        return (Double) value != 0.0;
      }
      if (value instanceof String) {
        return !((String) value).isEmpty();
      }
      if (value instanceof Map) {
        return !((Map<?, ?>) value).isEmpty();
      }
      if (value instanceof java.util.List) {
        return !((java.util.List<?>) value).isEmpty();
      }
      return true;
    }
  }
}
