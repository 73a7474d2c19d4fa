package gp.launcher;

import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Runs one silent cell that throws, through Toree's own shell channel, queued before the server
 * learns the kernel's ports (so it runs before any user cell), to warm the path that reports an
 * exception.
 *
 * <p>Why: an interrupt ends the cell with an exception, and Toree reports every exception with
 * three compilations of its Scala REPL (binding {@code lastException}, reading it back,
 * clearing it). The first time they run in a JVM they take 2.5 to 3.3 s on the loaded 2-core CI
 * machine, later ones 0.5 to 1.2 s; without the warm-up the first interrupt of every kernel
 * misses 2 s (figures in docs/operators/scala.md). Toree 0.5.0 has no other way in: it has no
 * {@code interrupt_request} handler, and its {@code --alternate-sigint} handler interrupts the
 * same thread and goes through the same reporting.
 *
 * <p>The cell also writes an empty line to its output first: Toree sends a cell's output through
 * actors of its own, and in a fresh JVM the first cell's output could reach IOPub after that
 * cell's {@code idle} status (seen in 2 of 6 fresh kernels at load 6 to 9; clients, which stop
 * listening at {@code idle}, lost it). With the output path warmed that way, 0 of 11. The warm-up's
 * messages (this line, its error) carry its own session and parent, which clients ignore.
 *
 * <p>The cell first hands Toree's {@code kernel} value (bound in its REPL) to {@link
 * InterruptReport} through a system property, the launcher's way to Toree's actors, and waits
 * (at most 5 s) until the launcher has installed its proxy and taken the property back. The
 * warm-up still matters with that in place: a cell that throws by itself (not interrupted) is
 * reported by Toree's compilations, and the first of them in a JVM is the slow one.
 *
 * <p>The message is a plain Jupyter {@code execute_request} (protocol 5.3, signed with the
 * kernel's key) sent with JeroMQ, which the Toree assembly carries; it is reached through
 * reflection because the launcher compiles against the JDK only. Best effort: any failure is
 * logged and the launch goes on. Called on its own thread by {@link ToreeLauncher#run} once the
 * shell port accepts.
 */
final class Warmup {
  static final String CODE =
      "{ val gpHandedOver = java.lang.System.getProperties; gpHandedOver.put(\""
          + InterruptReport.KERNEL_PROPERTY
          + "\", kernel); val gpUntil = java.lang.System.nanoTime + 5000000000L; "
          + "while (gpHandedOver.containsKey(\""
          + InterruptReport.KERNEL_PROPERTY
          + "\") && java.lang.System.nanoTime < gpUntil) Thread.sleep(5) }; "
          + "println(); Console.flush(); "
          + "throw new InterruptedException(\"gp-launcher warm-up\")";
  private static final String DELIMITER = "<IDS|MSG>";

  private Warmup() {}

  /**
   * Send the warm-up cell to {@code tcp://ip:shellPort}, count {@code queued} down once it is
   * handed to JeroMQ (or failed), and wait up to {@code timeoutMs} for its reply. Returns the
   * milliseconds it took, or -1 when it did not complete.
   */
  static long run(
      String ip,
      long shellPort,
      String key,
      long timeoutMs,
      java.util.concurrent.CountDownLatch queued) {
    long started = System.nanoTime();
    Object context = null;
    Object socket = null;
    try {
      Class<?> zmq = Class.forName("org.zeromq.ZMQ");
      context = zmq.getMethod("context", int.class).invoke(null, 1);
      int dealer = zmq.getField("DEALER").getInt(null);
      int sendMore = zmq.getField("SNDMORE").getInt(null);
      socket = context.getClass().getMethod("socket", int.class).invoke(context, dealer);
      Class<?> type = socket.getClass();
      type.getMethod("setLinger", int.class).invoke(socket, 0);
      type.getMethod("setReceiveTimeOut", int.class).invoke(socket, 1000);
      String host = ip.contains(":") ? "[" + ip + "]" : ip;
      type.getMethod("connect", String.class).invoke(socket, "tcp://" + host + ":" + shellPort);

      String msgId = UUID.randomUUID().toString();
      List<byte[]> frames = request(key, msgId);
      Method send = type.getMethod("send", byte[].class, int.class);
      for (int i = 0; i < frames.size(); i++) {
        send.invoke(socket, frames.get(i), i < frames.size() - 1 ? sendMore : 0);
      }
      queued.countDown();
      Method recv = type.getMethod("recv", int.class);
      Method more = type.getMethod("hasReceiveMore");
      long deadline = System.currentTimeMillis() + timeoutMs;
      while (System.currentTimeMillis() < deadline) {
        List<byte[]> reply = new ArrayList<>();
        byte[] frame = (byte[]) recv.invoke(socket, 0);
        if (frame == null) {
          continue; // receive timeout: Toree is still starting its interpreter
        }
        reply.add(frame);
        while ((Boolean) more.invoke(socket)) {
          reply.add((byte[]) recv.invoke(socket, 0));
        }
        if (answers(reply, msgId)) {
          return (System.nanoTime() - started) / 1_000_000;
        }
      }
      ToreeLauncher.log("The warm-up cell got no reply within " + timeoutMs / 1000 + "s");
    } catch (ReflectiveOperationException | RuntimeException | LinkageError err) {
      ToreeLauncher.log("The warm-up cell could not run: " + err);
    } catch (java.security.GeneralSecurityException err) {
      ToreeLauncher.log("The warm-up cell could not be signed: " + err);
    } finally {
      queued.countDown();
      close(socket);
      close(context);
    }
    return -1;
  }

  /** The frames of a signed, silent {@code execute_request} running {@link #CODE}. */
  static List<byte[]> request(String key, String msgId)
      throws java.security.GeneralSecurityException {
    Map<String, Object> header = new LinkedHashMap<>();
    header.put("msg_id", msgId);
    header.put("username", "gp-launcher");
    header.put("session", UUID.randomUUID().toString());
    header.put("date", Instant.now().toString());
    header.put("msg_type", "execute_request");
    header.put("version", "5.3");
    Map<String, Object> content = new LinkedHashMap<>();
    content.put("code", CODE);
    content.put("silent", true);
    content.put("store_history", false);
    content.put("user_expressions", new LinkedHashMap<String, Object>());
    content.put("allow_stdin", false);
    content.put("stop_on_error", false);
    String[] parts = {
      Json.dumps(header), "{}", "{}", Json.dumps(content),
    };
    String signature = Protocol.hmacHex(key, String.join("", parts));
    List<byte[]> frames = new ArrayList<>();
    frames.add(DELIMITER.getBytes(StandardCharsets.US_ASCII));
    frames.add(signature.getBytes(StandardCharsets.US_ASCII));
    for (String part : parts) {
      frames.add(part.getBytes(StandardCharsets.UTF_8));
    }
    return frames;
  }

  /** Whether {@code frames} is the {@code execute_reply} to {@code msgId}. */
  private static boolean answers(List<byte[]> frames, String msgId) {
    int at = 0;
    while (at < frames.size()
        && !DELIMITER.equals(new String(frames.get(at), StandardCharsets.US_ASCII))) {
      at++;
    }
    if (at + 3 >= frames.size()) {
      return false;
    }
    try {
      Object header = Json.parse(new String(frames.get(at + 2), StandardCharsets.UTF_8));
      Object parent = Json.parse(new String(frames.get(at + 3), StandardCharsets.UTF_8));
      return header instanceof Map
          && "execute_reply".equals(((Map<?, ?>) header).get("msg_type"))
          && parent instanceof Map
          && msgId.equals(((Map<?, ?>) parent).get("msg_id"));
    } catch (Json.JsonError err) {
      return false;
    }
  }

  private static void close(Object closeable) {
    if (closeable == null) {
      return;
    }
    try {
      closeable.getClass().getMethod("close").invoke(closeable);
    } catch (ReflectiveOperationException | RuntimeException err) {
      // closing: nothing to do
    }
  }
}
