package gp.launcher;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The little JSON the launch protocol needs (docs/protocol.md), with the JDK only.
 *
 * <p>{@link #parse} reads what a peer sends (a comm-port request, an acknowledgement): bounded
 * nesting, integers kept apart from other numbers (a {@code ts} of {@code 1.7e12} is not an
 * integer), and nothing but {@link JsonError} on bad input. {@link #dumps} writes as Python's
 * {@code json.dumps(obj)} with default arguments (the pinned form of §4.3), {@link #canonical}
 * as {@code json.dumps(obj, sort_keys=True, separators=(",", ":"))} (the signing input, §7.2).
 *
 * <p>Values: {@code Map<String, Object>} (insertion-ordered), {@code List<Object>}, {@code
 * String}, {@code Long} (integers that fit), {@code BigInteger} (those that do not), {@code
 * Double} (anything with a fraction or exponent), {@code Boolean}, and {@link #NULL}.
 */
public final class Json {
  /** JSON {@code null} (a Java null would be ambiguous with "member absent"). */
  public static final Object NULL = new Object() {
    @Override
    public String toString() {
      return "null";
    }
  };

  static final int MAX_DEPTH = 64;

  /** Raised for anything that is not the JSON we accept; the message is safe to log. */
  public static final class JsonError extends Exception {
    private static final long serialVersionUID = 1L;

    JsonError(String message) {
      super(message);
    }
  }

  private final String text;
  private int pos;

  private Json(String text) {
    this.text = text;
  }

  /** Parse one JSON value that makes up the whole of {@code text} (surrounding blanks allowed). */
  public static Object parse(String text) throws JsonError {
    Json parser = new Json(text);
    parser.skipBlanks();
    Object value = parser.value(0);
    parser.skipBlanks();
    if (parser.pos != text.length()) {
      throw new JsonError("trailing data");
    }
    return value;
  }

  private void skipBlanks() {
    while (pos < text.length()) {
      char c = text.charAt(pos);
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
        return;
      }
      pos++;
    }
  }

  private char peek() throws JsonError {
    if (pos >= text.length()) {
      throw new JsonError("unexpected end");
    }
    return text.charAt(pos);
  }

  private void expect(String word) throws JsonError {
    if (!text.startsWith(word, pos)) {
      throw new JsonError("unexpected character");
    }
    pos += word.length();
  }

  private Object value(int depth) throws JsonError {
    if (depth > MAX_DEPTH) {
      throw new JsonError("nested too deep");
    }
    char c = peek();
    switch (c) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"':
        return string();
      case 't':
        expect("true");
        return Boolean.TRUE;
      case 'f':
        expect("false");
        return Boolean.FALSE;
      case 'n':
        expect("null");
        return NULL;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          return number();
        }
        throw new JsonError("unexpected character");
    }
  }

  private Map<String, Object> object(int depth) throws JsonError {
    Map<String, Object> result = new LinkedHashMap<>();
    pos++;
    skipBlanks();
    if (peek() == '}') {
      pos++;
      return result;
    }
    while (true) {
      skipBlanks();
      if (peek() != '"') {
        throw new JsonError("object key is not a string");
      }
      String key = string();
      skipBlanks();
      expect(":");
      skipBlanks();
      result.put(key, value(depth + 1));
      skipBlanks();
      char c = peek();
      pos++;
      if (c == '}') {
        return result;
      }
      if (c != ',') {
        throw new JsonError("expected , or }");
      }
    }
  }

  private List<Object> array(int depth) throws JsonError {
    List<Object> result = new ArrayList<>();
    pos++;
    skipBlanks();
    if (peek() == ']') {
      pos++;
      return result;
    }
    while (true) {
      skipBlanks();
      result.add(value(depth + 1));
      skipBlanks();
      char c = peek();
      pos++;
      if (c == ']') {
        return result;
      }
      if (c != ',') {
        throw new JsonError("expected , or ]");
      }
    }
  }

  private String string() throws JsonError {
    StringBuilder out = new StringBuilder();
    pos++;
    while (true) {
      char c = peek();
      pos++;
      if (c == '"') {
        return out.toString();
      }
      if (c < 0x20) {
        throw new JsonError("control character in string");
      }
      if (c != '\\') {
        out.append(c);
        continue;
      }
      char e = peek();
      pos++;
      switch (e) {
        case '"': out.append('"'); break;
        case '\\': out.append('\\'); break;
        case '/': out.append('/'); break;
        case 'b': out.append('\b'); break;
        case 'f': out.append('\f'); break;
        case 'n': out.append('\n'); break;
        case 'r': out.append('\r'); break;
        case 't': out.append('\t'); break;
        case 'u':
          if (pos + 4 > text.length()) {
            throw new JsonError("bad \\u escape");
          }
          try {
            out.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
          } catch (NumberFormatException err) {
            throw new JsonError("bad \\u escape");
          }
          pos += 4;
          break;
        default:
          throw new JsonError("bad escape");
      }
    }
  }

  private Object number() throws JsonError {
    int start = pos;
    boolean integral = true;
    if (peek() == '-') {
      pos++;
    }
    while (pos < text.length()) {
      char c = text.charAt(pos);
      if (c >= '0' && c <= '9') {
        pos++;
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        integral = false;
        pos++;
      } else {
        break;
      }
    }
    String literal = text.substring(start, pos);
    if (pos - start > 400) {
      throw new JsonError("number too long");
    }
    try {
      if (integral) {
        BigInteger big = new BigInteger(literal);
        return big.bitLength() < 64 ? (Object) big.longValue() : big;
      }
      return Double.parseDouble(literal);
    } catch (NumberFormatException err) {
      throw new JsonError("bad number");
    }
  }

  // -- writing --------------------------------------------------------------------------------

  /** As Python's {@code json.dumps(value)}: {@code ", "} and {@code ": "}, ASCII escapes. */
  public static String dumps(Object value) {
    StringBuilder out = new StringBuilder();
    write(out, value, false);
    return out.toString();
  }

  /** As {@code json.dumps(value, sort_keys=True, separators=(",", ":"))}. */
  public static String canonical(Object value) {
    StringBuilder out = new StringBuilder();
    write(out, value, true);
    return out.toString();
  }

  @SuppressWarnings("unchecked")
  private static void write(StringBuilder out, Object value, boolean canonical) {
    if (value == null || value == NULL) {
      out.append("null");
    } else if (value instanceof String) {
      quote(out, (String) value);
    } else if (value instanceof Boolean) {
      out.append(((Boolean) value) ? "true" : "false");
    } else if (value instanceof Long || value instanceof Integer || value instanceof BigInteger) {
      out.append(value.toString());
    } else if (value instanceof Double) {
      out.append(pythonFloat((Double) value));
    } else if (value instanceof Map) {
      Map<String, Object> map = (Map<String, Object>) value;
      if (canonical) {
        map = new TreeMap<>(map);
      }
      out.append('{');
      boolean first = true;
      for (Map.Entry<String, Object> entry : map.entrySet()) {
        if (!first) {
          out.append(canonical ? "," : ", ");
        }
        first = false;
        quote(out, entry.getKey());
        out.append(canonical ? ":" : ": ");
        write(out, entry.getValue(), canonical);
      }
      out.append('}');
    } else if (value instanceof List) {
      out.append('[');
      boolean first = true;
      for (Object item : (List<Object>) value) {
        if (!first) {
          out.append(canonical ? "," : ", ");
        }
        first = false;
        write(out, item, canonical);
      }
      out.append(']');
    } else {
      throw new IllegalArgumentException("not a JSON value: " + value.getClass());
    }
  }

  /** Python's repr of a float for the values a request can carry (used only for signing). */
  private static String pythonFloat(double d) {
    if (Double.isNaN(d)) {
      return "NaN";
    }
    if (Double.isInfinite(d)) {
      return d > 0 ? "Infinity" : "-Infinity";
    }
    if (d == Math.rint(d) && Math.abs(d) < 1e16) {
      return String.format("%.1f", d);
    }
    return Double.toString(d).replace("E", "e");
  }

  private static void quote(StringBuilder out, String s) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        case '\b': out.append("\\b"); break;
        case '\f': out.append("\\f"); break;
        default:
          if (c < 0x20 || c > 0x7f) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
      }
    }
    out.append('"');
  }
}
