package gp.launcher;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import sun.misc.Signal;

/**
 * The Scala (Apache Toree) kernel launcher: protocol v2 (docs/protocol.md) inside the kernel's
 * own JVM, so it works where the JVM is the only process of the kernel (a YARN application
 * master in cluster mode). Why in the JVM and not a Python supervisor: docs/operators/scala.md.
 *
 * <p>Run as spark-submit's main class with the Toree assembly on the class path ({@code bin/run
 * _toree.sh} does that). It
 *
 * <ol>
 *   <li>binds its comm port and picks Toree's five ports inside {@code --port-range};
 *   <li>writes them to a private Toree profile and starts {@code org.apache.toree.Main} in this
 *       JVM, with {@code --spark-context-initialization-mode lazy|eager};
 *   <li>once Toree's shell port accepts, deletes the profile (it holds the key), queues one
 *       silent cell that throws ({@link Warmup}: Toree's reporting of a cell's exception is
 *       then warm), and sends the sealed connection info to {@code --response-address},
 *       retrying until acknowledged; once the warm-up cell ran, installs {@link
 *       InterruptReport} (an interrupted cell's exception reported without compiling);
 *   <li>serves signed interrupt, signal and shutdown requests on the comm port until the JVM
 *       exits. An interrupt interrupts the thread of the running cell and cancels its Spark
 *       jobs (see {@link #interruptCellThreads}).
 * </ol>
 */
public final class ToreeLauncher {
  static final String[] PORT_NAMES = {
    "shell_port", "iopub_port", "stdin_port", "hb_port", "control_port"
  };
  static final int SEND_ATTEMPTS = 8;
  static final int MAX_REQUEST_BYTES = 64 * 1024;
  static final int COMM_MAX_CONNECTIONS = 64;
  static final int COMM_MAX_CONNECTIONS_PER_PEER = 8;
  static final long REFUSAL_LOG_INTERVAL_MS = 60_000L;
  static final long SHUTDOWN_GRACE_MS = 5_000L;
  /** At most this long for Toree's interpreter to start and run the warm-up cell. */
  static final long WARMUP_TIMEOUT_MS = 120_000L;

  private final String kernelId;
  private final String responseHost;
  private final int responsePort;
  private final String publicKey;
  private final String launchSecret;
  private final int[] portRange;
  private final String ip;
  private final String sparkMode;
  private final boolean commBindAll;
  private final List<String> toreeArgs;
  private ServerSocket commSocket;
  private Map<String, Object> connInfo;
  private Thread kernelThread;
  private final Map<String, Integer> byPeer = new HashMap<>();
  private int openConnections;
  private final Map<String, long[]> refusals = new HashMap<>();

  static void log(String message) {
    System.err.println("[gp-launcher " + java.time.LocalTime.now() + "] " + message);
    System.err.flush();
  }

  static void fail(String message) {
    log(message);
    System.exit(1);
  }

  private ToreeLauncher(Map<String, String> options, List<String> toreeArgs, String secret) {
    this.kernelId = required(options, "--kernel-id");
    if (!kernelId.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")) {
      throw new IllegalArgumentException("--kernel-id " + quoted(kernelId) + " is not a kernel id");
    }
    String address = required(options, "--response-address");
    int colon = address.lastIndexOf(':');
    String port = colon < 0 ? "" : address.substring(colon + 1);
    if (colon < 1 || !port.matches("[0-9]{1,5}")) {
      throw new IllegalArgumentException(
          "--response-address " + quoted(address) + " is not of the form IP:PORT");
    }
    this.responseHost = address.substring(0, colon).replace("[", "").replace("]", "");
    this.responsePort = Integer.parseInt(port);
    this.publicKey = required(options, "--public-key");
    try {
      Protocol.publicKey(publicKey);
    } catch (java.security.GeneralSecurityException err) {
      throw new IllegalArgumentException(
          "--public-key for kernel " + kernelId + " is not a base64 DER RSA public key ("
              + err.getMessage() + "): the kernelspec must pass {public_key}");
    }
    this.portRange = parsePortRange(options.getOrDefault("--port-range", "0..0"));
    this.sparkMode = options.getOrDefault("--spark-context-initialization-mode", "lazy");
    if (!sparkMode.equals("lazy") && !sparkMode.equals("eager")) {
      throw new IllegalArgumentException(
          "--spark-context-initialization-mode "
              + quoted(sparkMode)
              + " for kernel "
              + kernelId
              + ": Apache Toree kernels need a Spark context; use lazy or eager");
    }
    this.commBindAll = options.containsKey("--comm-bind-all");
    String givenIp = options.getOrDefault("--ip", System.getenv().getOrDefault("GP_KERNEL_IP", ""));
    this.ip = givenIp.isEmpty() ? localAddressTowards(responseHost, responsePort) : givenIp;
    this.launchSecret = secret;
    this.toreeArgs = toreeArgs;
  }

  private static String required(Map<String, String> options, String name) {
    String value = options.get(name);
    if (value == null || value.isEmpty()) {
      throw new IllegalArgumentException(name + " is required");
    }
    return value;
  }

  static String quoted(String value) {
    String shown = value.length() > 80 ? value.substring(0, 80) + "..." : value;
    return "'" + shown.replaceAll("[^\\x20-\\x7e]", "?") + "'";
  }

  static int[] parsePortRange(String text) {
    String[] parts = text.split("\\.\\.", -1);
    if (parts.length != 2 || !parts[0].matches("[0-9]{1,5}") || !parts[1].matches("[0-9]{1,5}")) {
      throw new IllegalArgumentException(
          "--port-range " + quoted(text) + " is not of the form LOWER..UPPER");
    }
    int lower = Integer.parseInt(parts[0]);
    int upper = Integer.parseInt(parts[1]);
    if (!(lower == 0 && upper == 0) && !(0 < lower && lower < upper && upper <= 65535)) {
      throw new IllegalArgumentException(
          "--port-range " + quoted(text) + " is not a valid range of TCP ports");
    }
    return new int[] {lower, upper};
  }

  /** The address of this host that routes to the server (no packet is sent). */
  static String localAddressTowards(String host, int port) {
    try (DatagramSocket probe = new DatagramSocket()) {
      probe.connect(InetAddress.getByName(host), port);
      InetAddress local = probe.getLocalAddress();
      if (local != null && !local.isAnyLocalAddress()) {
        return local.getHostAddress();
      }
    } catch (IOException | RuntimeException err) {
      // fall through
    }
    return "127.0.0.1";
  }

  /** A socket bound on {@code ip} to a free port inside {@code range} (any port for 0..0). */
  static ServerSocket bindInRange(String ip, int[] range) throws IOException {
    IOException last = null;
    for (int attempt = 0; attempt < 50; attempt++) {
      int candidate =
          range[1] == 0 ? 0 : ThreadLocalRandom.current().nextInt(range[0], range[1] + 1);
      ServerSocket socket = new ServerSocket();
      try {
        socket.bind(
            ip.isEmpty() ? new InetSocketAddress(candidate) : new InetSocketAddress(ip, candidate),
            128);
        return socket;
      } catch (IOException err) {
        last = err;
        socket.close();
      }
    }
    throw new IOException(
        "No free port on " + ip + " in range " + range[0] + ".." + range[1] + " after 50 tries",
        last);
  }

  static long processGroup() {
    try {
      String stat = new String(Files.readAllBytes(Paths.get("/proc/self/stat")), StandardCharsets.UTF_8);
      String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      return Long.parseLong(fields[2]);
    } catch (IOException | RuntimeException err) {
      return ProcessHandle.current().pid();
    }
  }

  // -- launch ---------------------------------------------------------------------------------

  void run() throws Exception {
    commSocket = bindInRange(commBindAll ? "" : ip, portRange);
    List<ServerSocket> held = new ArrayList<>();
    for (int i = 0; i < PORT_NAMES.length; i++) {
      held.add(bindInRange(ip, portRange));
    }
    byte[] keyBytes = new byte[32];
    new SecureRandom().nextBytes(keyBytes);
    StringBuilder key = new StringBuilder();
    for (byte b : keyBytes) {
      key.append(String.format("%02x", b & 0xff));
    }
    long pid = ProcessHandle.current().pid();
    connInfo = new LinkedHashMap<>();
    for (int i = 0; i < PORT_NAMES.length; i++) {
      connInfo.put(PORT_NAMES[i], (long) held.get(i).getLocalPort());
      held.get(i).close();
    }
    connInfo.put("ip", ip);
    connInfo.put("key", key.toString());
    connInfo.put("transport", "tcp");
    connInfo.put("signature_scheme", "hmac-sha256");
    connInfo.put("kernel_name", "");
    connInfo.put("pid", pid);
    connInfo.put("pgid", processGroup());
    connInfo.put("kernel_pid", pid);
    connInfo.put("comm_port", (long) commSocket.getLocalPort());
    connInfo.put("kernel_id", kernelId);

    Path workdir =
        Files.createTempDirectory(
            "gp-kernel-" + kernelId.substring(0, Math.min(8, kernelId.length())) + "-",
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
    Path profile = workdir.resolve("kernel-" + kernelId + ".json");
    Files.write(profile, Json.dumps(connInfo).getBytes(StandardCharsets.UTF_8));

    Protocol.Verifier verifier = new Protocol.Verifier(key.toString(), kernelId);
    Thread comm = new Thread(() -> serveComm(verifier), "gp-comm-port");
    comm.setDaemon(true);
    comm.start();

    List<String> args = new ArrayList<>(toreeArgs);
    args.add("--profile");
    args.add(profile.toString());
    args.add("--spark-context-initialization-mode");
    args.add(sparkMode);
    log("Starting Apache Toree for kernel " + kernelId + " (Spark context: " + sparkMode + ")");
    kernelThread =
        new Thread(
            () -> {
              runToree(args);
              kernelEnded("Apache Toree stopped");
            },
            "toree-kernel");
    kernelThread.start();

    awaitShellPort((Long) connInfo.get("shell_port"), 300_000L);
    Files.deleteIfExists(profile);
    Files.deleteIfExists(workdir);
    // The warm-up's request is queued at Toree before the server learns the ports, so it runs
    // before any user cell; its reply is awaited in the background, so the server (and the
    // client's connection to Toree's channels) does not wait for it.
    long shellPort = (Long) connInfo.get("shell_port");
    String connectionKey = key.toString();
    java.util.concurrent.CountDownLatch queued = new java.util.concurrent.CountDownLatch(1);
    Thread warmup =
        new Thread(
            () -> {
              long warmed = Warmup.run(ip, shellPort, connectionKey, WARMUP_TIMEOUT_MS, queued);
              if (warmed >= 0) {
                log("Warmed up Toree's reporting of exceptions in " + warmed + " ms");
              }

            },
            "gp-warmup");
    warmup.setDaemon(true);
    // The warm-up cell hands over Toree's kernel and waits for this thread to install the
    // proxy, so it is in place before any user cell.
    Thread report =
        new Thread(
            () -> {
              String why = InterruptReport.awaitAndInstall(WARMUP_TIMEOUT_MS);
              log(why == null
                  ? "Interrupts are reported without compiling (InterruptReport installed in "
                      + InterruptReport.installMs + " ms)"
                  : "Interrupts are reported by Toree (InterruptReport not installed: " + why + ")");
            },
            "gp-interrupt-report");
    report.setDaemon(true);
    report.start();
    warmup.start();
    queued.await(10, java.util.concurrent.TimeUnit.SECONDS);
    sendConnectionInfo();
  }

  private static void runToree(List<String> args) {
    try {
      Class<?> main = Class.forName("org.apache.toree.Main");
      Method entry = main.getMethod("main", String[].class);
      entry.invoke(null, (Object) args.toArray(new String[0]));
    } catch (ClassNotFoundException err) {
      fail("Apache Toree is not on the class path (org.apache.toree.Main): pass its assembly jar");
    } catch (InvocationTargetException err) {
      err.getCause().printStackTrace();
      fail("Apache Toree failed: " + err.getCause());
    } catch (ReflectiveOperationException err) {
      fail("Apache Toree could not be started: " + err);
    }
  }

  private void awaitShellPort(long port, long timeoutMs) throws InterruptedException {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      if (!kernelThread.isAlive()) {
        fail("Apache Toree stopped before it bound its ports");
      }
      try (Socket probe = new Socket()) {
        probe.connect(new InetSocketAddress(ip, (int) port), 1000);
        return;
      } catch (IOException err) {
        Thread.sleep(50);
      }
    }
    fail("Apache Toree did not bind its ports within " + timeoutMs / 1000 + "s");
  }

  private void sendConnectionInfo() throws Exception {
    String message = Protocol.seal(publicKey, kernelId, launchSecret, connInfo, null, null);
    long delay = 100;
    for (int attempt = 1; attempt <= SEND_ATTEMPTS; attempt++) {
      Map<?, ?> status;
      try {
        status = sendOnce(message);
      } catch (IOException err) {
        log("Sending connection info failed (attempt " + attempt + "): " + err.getMessage());
        Thread.sleep(delay);
        delay = Math.min(delay * 2, 5000);
        continue;
      }
      if ("accepted".equals(status.get("status"))) {
        log("The server accepted the connection info of kernel " + kernelId);
        return;
      }
      if ("replayed".equals(status.get("reason")) && attempt > 1) {
        return; // an earlier attempt got through; its acknowledgement was lost
      }
      fail("The server refused the connection info: " + Json.dumps(status));
    }
    fail(
        "Could not reach the server at "
            + responseHost
            + ":"
            + responsePort
            + " after "
            + SEND_ATTEMPTS
            + " attempts");
  }

  private Map<?, ?> sendOnce(String message) throws IOException {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(responseHost, responsePort), 10_000);
      socket.setSoTimeout(10_000);
      OutputStream out = socket.getOutputStream();
      out.write((message + "\n").getBytes(StandardCharsets.US_ASCII));
      out.flush();
      String reply = readLine(socket.getInputStream(), 4096);
      if (reply == null || reply.trim().isEmpty()) {
        throw new IOException("the server closed the connection without an acknowledgement");
      }
      Object status;
      try {
        status = Json.parse(reply);
      } catch (Json.JsonError err) {
        throw new IOException("unreadable acknowledgement");
      }
      return status instanceof Map ? (Map<?, ?>) status : new HashMap<>();
    }
  }

  /** One line of at most {@code limit} bytes (without the newline); null at once-EOF. */
  static String readLine(InputStream in, int limit) throws IOException {
    ByteArrayOutputStream data = new ByteArrayOutputStream();
    while (data.size() <= limit) {
      int b = in.read();
      if (b < 0) {
        return data.size() == 0 ? null : data.toString(StandardCharsets.UTF_8);
      }
      if (b == '\n') {
        return data.toString(StandardCharsets.UTF_8);
      }
      data.write(b);
    }
    throw new IOException("line too long");
  }

  // -- comm port ------------------------------------------------------------------------------

  /**
   * The comm port's accept loop (thread {@code gp-comm-port}). It is what the server reaches the
   * kernel through, so the kernel never runs without it: if it stops (the socket closed, an
   * error the loop cannot survive), the kernel is shut down, as an ipykernel exits when its
   * Python launcher dies. A failed accept on an open socket (no file descriptors left, a
   * connection reset before it was taken) is retried after {@link #ACCEPT_RETRY_MS}.
   */
  private void serveComm(Protocol.Verifier verifier) {
    try {
      acceptLoop(verifier);
    } catch (RuntimeException | Error err) {
      log("The comm port failed: " + err);
    }
    kernelEnded("The comm port of kernel " + kernelId + " stopped");
  }

  static final long ACCEPT_RETRY_MS = 200L;

  private void acceptLoop(Protocol.Verifier verifier) {
    while (true) {
      Socket socket;
      try {
        socket = commSocket.accept();
      } catch (IOException err) {
        if (commSocket.isClosed()) {
          return;
        }
        refused("accept failed (retrying)", String.valueOf(err.getMessage()));
        try {
          Thread.sleep(ACCEPT_RETRY_MS);
        } catch (InterruptedException stop) {
          return;
        }
        continue;
      }
      String host = socket.getInetAddress().getHostAddress();
      if (!enter(host)) {
        refused("too many connections", host);
        closeQuietly(socket);
        continue;
      }
      Thread worker =
          new Thread(
              () -> {
                try {
                  serveOne(socket, verifier, host);
                } finally {
                  leave(host);
                  closeQuietly(socket);
                }
              },
              "gp-comm-request");
      worker.setDaemon(true);
      worker.start();
    }
  }

  private synchronized boolean enter(String host) {
    if (openConnections >= COMM_MAX_CONNECTIONS
        || byPeer.getOrDefault(host, 0) >= COMM_MAX_CONNECTIONS_PER_PEER) {
      return false;
    }
    openConnections++;
    byPeer.merge(host, 1, Integer::sum);
    return true;
  }

  private synchronized void leave(String host) {
    openConnections--;
    if (byPeer.merge(host, -1, Integer::sum) <= 0) {
      byPeer.remove(host);
    }
  }

  /** Log the first refusal of each reason, then one summary per reason per minute. */
  private synchronized void refused(String reason, String peer) {
    long now = System.currentTimeMillis();
    for (Map.Entry<String, long[]> entry : new ArrayList<>(refusals.entrySet())) {
      long[] window = entry.getValue();
      if (now - window[0] >= REFUSAL_LOG_INTERVAL_MS) {
        refusals.remove(entry.getKey());
        if (window[1] > 0) {
          log("Refused " + window[1] + " more comm-port request(s) (" + entry.getKey() + ")");
        }
      }
    }
    long[] window = refusals.get(reason);
    if (window != null) {
      window[1]++;
      return;
    }
    refusals.put(reason, new long[] {now, 0});
    log("Refused a comm-port request from " + peer + ": " + reason);
  }

  private void serveOne(Socket socket, Protocol.Verifier verifier, String host) {
    String reply;
    Runnable after = null;
    try {
      socket.setSoTimeout(5000);
      long deadline = System.currentTimeMillis() + 5000;
      String line = readRequest(socket.getInputStream(), deadline);
      Map<String, Object> request = verifier.check(line, System.currentTimeMillis());
      if (request.containsKey("shutdown")) {
        reply = "{\"ok\": true}";
        after = this::shutdown;
      } else {
        int signum = ((Long) request.get("signum")).intValue();
        // The JVM is the kernel's process: it answers while it runs. Once Toree's main returns
        // the JVM is already exiting (kernelEnded), possibly for seconds of Spark's shutdown
        // hooks; saying "not alive" then would let the provisioner report a kernel gone whose
        // process still runs, and a kill (signal 9) must still reach it.
        boolean alive = kernelThread != null;
        if (alive && signum != 0) {
          after = signal(signum);
        }
        reply = "{\"ok\": true, \"alive\": " + alive + "}";
      }
    } catch (Protocol.Refused err) {
      refused(err.getMessage(), host);
      reply = "{\"ok\": false, \"error\": " + Json.dumps(err.getMessage()) + "}";
    } catch (IOException err) {
      String reason =
          "line too long".equals(err.getMessage()) ? "request too large" : "no complete request in time";
      refused(reason, host);
      reply = "{\"ok\": false, \"error\": \"" + reason + "\"}";
    }
    try {
      OutputStream out = socket.getOutputStream();
      out.write((reply + "\n").getBytes(StandardCharsets.UTF_8));
      out.flush();
    } catch (IOException err) {
      // the server went away: nothing to tell
    }
    if (after != null) {
      after.run();
    }
  }

  private static String readRequest(InputStream in, long deadline) throws IOException {
    ByteArrayOutputStream data = new ByteArrayOutputStream();
    byte[] chunk = new byte[4096];
    while (data.size() <= MAX_REQUEST_BYTES) {
      if (System.currentTimeMillis() > deadline) {
        throw new SocketTimeoutException("deadline");
      }
      int n = in.read(chunk);
      if (n < 0) {
        break;
      }
      for (int i = 0; i < n; i++) {
        if (chunk[i] == '\n') {
          data.write(chunk, 0, i);
          return data.toString(StandardCharsets.UTF_8);
        }
      }
      data.write(chunk, 0, n);
    }
    if (data.size() > MAX_REQUEST_BYTES) {
      throw new IOException("line too long");
    }
    return data.toString(StandardCharsets.UTF_8);
  }

  /** What to do, after the reply, for signal {@code signum} sent to the kernel. */
  private Runnable signal(int signum) throws Protocol.Refused {
    switch (signum) {
      case 2:
        return () -> {
          long received = System.nanoTime();
          int threads = interruptCellThreads(() -> cancelSparkJobs(), received);
          log("Interrupt of kernel " + kernelId + " done: " + threads + " cell thread(s), "
              + (System.nanoTime() - received) / 1_000_000 + " ms until the cell ended");
        };
      case 9:
        return () -> Runtime.getRuntime().halt(137);
      case 15:
        return this::shutdown;
      default:
        String name = SIGNAL_NAMES.get(signum);
        if (name == null) {
          throw new Protocol.Refused("no such signal");
        }
        return () -> {
          try {
            Signal.raise(new Signal(name));
          } catch (IllegalArgumentException err) {
            log("Cannot raise SIG" + name + " in the JVM: " + err.getMessage());
          }
        };
    }
  }

  /** Toree runs cells on the threads of its interpreter's task manager ("task-manager-N"). */
  static final String CELL_THREAD_PREFIX = "task-manager-";

  static final long INTERRUPT_WINDOW_MS = 10_000L;

  /**
   * Interrupt the cell that runs: its thread gets an InterruptedException (Thread.sleep, waits
   * on Spark jobs), and {@link #cancelSparkJobs} stops its jobs. Toree's own handler of its
   * interrupt signal ({@code --alternate-sigint}) is not used: it first asks for the Spark
   * context, which in lazy mode makes one while the cell runs (seconds of CPU, or no effect
   * until the cell ends), and its restart of the interpreter's threads takes seconds more.
   *
   * <p>A cell thread is interrupted only while it runs the cell's code (see {@link #cellOf}),
   * and again every 100 ms while it stays in that same cell, for at most {@link
   * #INTERRUPT_WINDOW_MS}; once seen idle in its pool or running another cell it is left alone,
   * so a cell queued after the interrupted one is not touched (the pool was not always seen
   * idle between the two when the JVM had little CPU: the next cell was interrupted too). Before each interrupt, {@link
   * InterruptReport#beforeInterrupt} lets the cell's exception out of Toree's REPL unbound, so
   * it is reported without Toree's five compiler runs (when the proxy is installed; otherwise
   * Toree reports it as any exception). Returns how many threads were interrupted.
   */
  static int interruptCellThreads(Runnable afterFirst, long received) {
    Set<Thread> finished = new HashSet<>();
    Set<Thread> interrupted = new HashSet<>();
    Map<Thread, String> targets = new HashMap<>();
    boolean first = true;
    long deadline = System.currentTimeMillis() + INTERRUPT_WINDOW_MS;
    while (System.currentTimeMillis() < deadline) {
      boolean busy = false;
      for (Map.Entry<Thread, StackTraceElement[]> entry : Thread.getAllStackTraces().entrySet()) {
        Thread thread = entry.getKey();
        if (!thread.getName().startsWith(CELL_THREAD_PREFIX) || finished.contains(thread)) {
          continue;
        }
        if (idleInPool(entry.getValue())) {
          finished.add(thread);
          continue;
        }
        busy = true;
        String cell = cellOf(entry.getValue());
        if (cell != null) {
          String target = targets.putIfAbsent(thread, cell);
          if (target != null && !target.equals(cell)) {
            // The interrupted cell ended and the next one runs on this thread: leave it.
            finished.add(thread);
            continue;
          }
          InterruptReport.beforeInterrupt();
          thread.interrupt();
          interrupted.add(thread);
        }
      }
      if (first) {
        first = false;
        log("Interrupt: " + interrupted.size() + " cell thread(s) interrupted "
            + (System.nanoTime() - received) / 1_000_000 + " ms after the request");
        afterFirst.run();
      }
      if (!busy) {
        break;
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException err) {
        break;
      }
    }
    return interrupted.size();
  }

  /**
   * The cell the thread runs ({@code $lineN}), or null when it runs none of the cell's own code:
   * the outermost frame of a class the REPL compiled from a cell ({@code $lineN.$read...}; inner
   * frames may be functions defined by earlier cells). Before that the cell is being compiled,
   * and an interrupt there ends Toree's task without a reply, leaving the kernel busy for good.
   */
  static String cellOf(StackTraceElement[] stack) {
    for (int i = stack.length - 1; i >= 0; i--) {
      String name = stack[i].getClassName();
      if (name.startsWith("$line")) {
        int dot = name.indexOf('.');
        return dot < 0 ? name : name.substring(0, dot);
      }
    }
    return null;
  }

  /**
   * Cancel the running Spark jobs of the kernel's Spark session, when it has one (through
   * reflection: the launcher is compiled without Spark). Never makes a Spark context.
   */
  static boolean cancelSparkJobs() {
    try {
      Class<?> session = Class.forName("org.apache.spark.sql.SparkSession");
      Object option = session.getMethod("getDefaultSession").invoke(null);
      if (!(Boolean) option.getClass().getMethod("isDefined").invoke(option)) {
        return false;
      }
      Object active = option.getClass().getMethod("get").invoke(option);
      Object context = active.getClass().getMethod("sparkContext").invoke(active);
      context.getClass().getMethod("cancelAllJobs").invoke(context);
      return true;
    } catch (ReflectiveOperationException | RuntimeException | LinkageError err) {
      log("Could not cancel the Spark jobs: " + err);
      return false;
    }
  }

  private static boolean idleInPool(StackTraceElement[] stack) {
    for (StackTraceElement frame : stack) {
      if (frame.getClassName().equals("java.util.concurrent.ThreadPoolExecutor")
          && frame.getMethodName().equals("getTask")) {
        return true;
      }
    }
    return false;
  }

  static final Map<Integer, String> SIGNAL_NAMES =
      Map.of(1, "HUP", 3, "QUIT", 10, "USR1", 12, "USR2", 14, "ALRM", 28, "WINCH");

  /**
   * Called from the thread that ran Toree when it returns, and from the comm port's thread when
   * it stops: either way the kernel cannot be reached or is gone, so the JVM exits (as the
   * Python launcher exits when its kernel exits, and its kernel when the launcher dies),
   * instead of lingering on Spark's or Akka's threads where the provisioner sees no kernel.
   */
  private void kernelEnded(String why) {
    log(why + ": the JVM exits");
    shutdown();
  }

  private final java.util.concurrent.atomic.AtomicBoolean stopping =
      new java.util.concurrent.atomic.AtomicBoolean();

  /** Stop the kernel: orderly exit (Toree and Spark shutdown hooks), forced after a grace. */
  private void shutdown() {
    if (!stopping.compareAndSet(false, true)) {
      return;
    }
    log("Shutting down kernel " + kernelId);
    Thread halt =
        new Thread(
            () -> {
              try {
                Thread.sleep(SHUTDOWN_GRACE_MS);
              } catch (InterruptedException err) {
                return;
              }
              Runtime.getRuntime().halt(143);
            },
            "gp-shutdown-deadline");
    halt.setDaemon(true);
    halt.start();
    new Thread(() -> System.exit(0), "gp-shutdown").start();
  }

  private static void closeQuietly(Socket socket) {
    try {
      socket.close();
    } catch (IOException err) {
      // closing: nothing to do
    }
  }

  // -- entry ----------------------------------------------------------------------------------

  static final List<String> VALUE_OPTIONS =
      List.of(
          "--kernel-id",
          "--response-address",
          "--public-key",
          "--port-range",
          "--spark-context-initialization-mode",
          "--ip",
          "--protocol-version");

  /**
   * Splits argv into the launcher's options and Toree's. gateway_provisioners' spellings
   * ({@code --RemoteProcessProxy.kernel-id} and friends) are accepted.
   */
  static List<String> parseArgs(String[] argv, Map<String, String> options) {
    List<String> rest = new ArrayList<>();
    for (int i = 0; i < argv.length; i++) {
      String arg = argv[i].trim();
      String name = arg.replace("--RemoteProcessProxy.", "--");
      String inline = null;
      int eq = name.indexOf('=');
      if (eq > 0) {
        inline = name.substring(eq + 1);
        name = name.substring(0, eq);
      }
      if (name.equals("--comm-bind-all")) {
        options.put(name, "1");
      } else if (VALUE_OPTIONS.contains(name)) {
        if (inline == null && i + 1 >= argv.length) {
          throw new IllegalArgumentException(name + " needs a value");
        }
        options.put(name, inline != null ? inline : argv[++i].trim());
      } else if (name.equals("--kernel-username") || name.equals("--response-port")) {
        if (inline == null) {
          i++;
        }
      } else if (!arg.isEmpty()) {
        rest.add(arg);
      }
    }
    return rest;
  }

  public static void main(String[] argv) {
    Map<String, String> options = new HashMap<>();
    ToreeLauncher launcher;
    try {
      List<String> toreeArgs = parseArgs(argv, options);
      String version = options.getOrDefault("--protocol-version", "2");
      if (!version.equals("2")) {
        throw new IllegalArgumentException(
            "--protocol-version " + quoted(version) + ": the Toree launcher speaks version 2 only");
      }
      String secret = System.getenv(Protocol.LAUNCH_SECRET_ENV);
      if (secret == null || secret.isEmpty()) {
        throw new IllegalArgumentException(
            Protocol.LAUNCH_SECRET_ENV + " is not set: start this launcher through a provisioner");
      }
      launcher = new ToreeLauncher(options, toreeArgs, secret);
    } catch (IllegalArgumentException err) {
      log(err.getMessage());
      System.exit(2);
      return;
    }
    try {
      launcher.run();
    } catch (Exception err) {
      err.printStackTrace();
      fail("The launcher failed: " + err);
    }
  }
}
