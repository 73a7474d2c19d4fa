package org.apache.toree;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A stand-in for Apache Toree's main class, for the launcher's lifecycle test
 * (packages/gp-provisioners-core/tests/test_toree_launcher_lifecycle.py): it reads the shell port
 * and ip from {@code --profile}, accepts on that port, starts a non-daemon thread that never
 * ends (as Spark's and Akka's threads outlive a returning main), and returns once the file named
 * by {@code FAKE_TOREE_STOP} exists.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    String profile = null;
    for (int i = 0; i + 1 < args.length; i++) {
      if (args[i].equals("--profile")) {
        profile = args[i + 1];
      }
    }
    String text = new String(Files.readAllBytes(Paths.get(profile)), StandardCharsets.UTF_8);
    ServerSocket shell = new ServerSocket();
    shell.bind(new InetSocketAddress(field(text, "ip"), Integer.parseInt(field(text, "shell_port"))));
    Thread acceptor =
        new Thread(
            () -> {
              while (true) {
                try (Socket ignored = shell.accept()) {
                  // the launcher's probe (and its warm-up, which finds no JeroMQ here)
                } catch (IOException err) {
                  return;
                }
              }
            },
            "fake-toree-shell");
    acceptor.setDaemon(true);
    acceptor.start();
    Thread lingering =
        new Thread(
            () -> {
              while (true) {
                try {
                  Thread.sleep(60_000);
                } catch (InterruptedException err) {
                  return;
                }
              }
            },
            "fake-spark-thread");
    lingering.start();
    Path stop = Paths.get(System.getenv("FAKE_TOREE_STOP"));
    while (!Files.exists(stop)) {
      Thread.sleep(50);
    }
    System.err.println("fake Toree: main returns");
  }

  private static String field(String json, String name) {
    Matcher m = Pattern.compile("\"" + name + "\": \"?([^,\"}]+)").matcher(json);
    if (!m.find()) {
      throw new IllegalStateException("no " + name + " in the profile");
    }
    return m.group(1);
  }
}
