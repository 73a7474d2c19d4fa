package gp.launcher;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs the Toree launcher's protocol code on docs/protocol-vectors/v2-vectors.json and prints
 * what it produced as one JSON object; the Python test (gp-provisioners-core's
 * tests/test_toree_launcher_vectors.py) compares it with the vectors and opens the sealed
 * message with the server's code. Usage: VectorCheck VECTORS.json
 */
public final class VectorCheck {
  private VectorCheck() {}

  private static byte[] hex(String text) {
    byte[] out = new byte[text.length() / 2];
    for (int i = 0; i < out.length; i++) {
      out[i] = (byte) Integer.parseInt(text.substring(2 * i, 2 * i + 2), 16);
    }
    return out;
  }

  private static String refusal(Protocol.Verifier verifier, String line, long now) {
    try {
      verifier.check(line, now);
      return null;
    } catch (Protocol.Refused err) {
      return err.getMessage();
    }
  }

  @SuppressWarnings("unchecked")
  public static void main(String[] args) throws Exception {
    String text = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8);
    Map<String, Object> vectors = (Map<String, Object>) Json.parse(text);
    Map<String, Object> launch = (Map<String, Object>) vectors.get("launch");
    Map<String, Object> rsa = (Map<String, Object>) vectors.get("rsa");
    String kernelId = (String) launch.get("kernel_id");
    String secret = (String) launch.get("launch_secret");
    Map<String, Object> connInfo = (Map<String, Object>) launch.get("conn_info");
    byte[] key = hex((String) launch.get("aes_key_hex"));
    byte[] nonce = hex((String) launch.get("nonce_hex"));
    Map<String, Object> out = new LinkedHashMap<>();
    String body = Protocol.bodyJson(secret, connInfo);
    out.put("body_json", body);
    out.put(
        "associated_data", new String(Protocol.associatedData(kernelId), StandardCharsets.UTF_8));
    out.put(
        "ciphertext_b64",
        java.util.Base64.getEncoder()
            .encodeToString(Protocol.encryptBody(key, nonce, kernelId, body)));
    out.put(
        "fixed_message",
        Protocol.seal((String) rsa.get("public_key_b64"), kernelId, secret, connInfo, key, nonce));
    out.put(
        "random_message",
        Protocol.seal((String) rsa.get("public_key_b64"), kernelId, secret, connInfo, null, null));

    Map<String, Object> comm = (Map<String, Object>) vectors.get("comm");
    long skew = (Long) comm.get("max_skew_ms");
    List<Object> requests = new ArrayList<>();
    for (Object item : (List<Object>) comm.get("requests")) {
      Map<String, Object> vector = (Map<String, Object>) item;
      String vkey = (String) vector.get("key");
      String vkid = (String) vector.get("kernel_id");
      long ts = (Long) vector.get("ts");
      String line = Json.dumps(vector.get("message"));
      Map<String, Object> result = new LinkedHashMap<>();
      result.put("name", vector.get("name"));
      String input = Protocol.signingInput(vkid, vector.get("request"), ts, (String) vector.get("nonce"));
      result.put("signing_input", input);
      result.put("signature", Protocol.hmacHex(vkey, input));
      List<Object> accepted = new ArrayList<>();
      for (long now : new long[] {ts, ts - skew, ts + skew}) {
        Protocol.Verifier verifier = new Protocol.Verifier(vkey, vkid);
        if (now == ts) {
          result.put("request", verifier.check(line, now));
          accepted.add(Json.NULL);
          String second = refusal(verifier, line, now);
          result.put("replay", second == null ? Json.NULL : second);
        } else {
          String first = refusal(verifier, line, now);
          accepted.add(first == null ? Json.NULL : first);
        }
      }
      result.put("refusals_at_now_and_skew", accepted);
      requests.add(result);
    }
    out.put("requests", requests);
    Map<String, Object> first = (Map<String, Object>) ((List<Object>) comm.get("requests")).get(0);
    List<Object> refusals = new ArrayList<>();
    for (Object item : (List<Object>) comm.get("refusals")) {
      Map<String, Object> vector = (Map<String, Object>) item;
      Protocol.Verifier verifier =
          new Protocol.Verifier((String) first.get("key"), (String) first.get("kernel_id"));
      Object message = vector.containsKey("line") ? vector.get("line") : Json.dumps(vector.get("message"));
      String reason = refusal(verifier, (String) message, (Long) vector.get("now_ms"));
      Map<String, Object> result = new LinkedHashMap<>();
      result.put("name", vector.get("name"));
      result.put("refused", reason == null ? Json.NULL : reason);
      refusals.add(result);
    }
    out.put("refusals", refusals);
    List<Object> hostile = new ArrayList<>();
    String deep = "[".repeat(100_000);
    for (String line : new String[] {"", "not json", deep, "{\"request\": 1}", "\u00ff\u00fe"}) {
      Protocol.Verifier verifier = new Protocol.Verifier("k", "kid");
      hostile.add(refusal(verifier, line, 0));
    }
    out.put("hostile", hostile);
    System.out.println(Json.dumps(out));
  }
}
