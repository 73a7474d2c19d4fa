package gp.launcher;

import java.lang.reflect.Field;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * Reports the exception that ends an interrupted cell without compiling anything, so an
 * interrupt costs milliseconds of CPU instead of 0.6 to 0.8 CPU-seconds.
 *
 * <p>Why it is needed: Toree 0.5.0 reports any exception of a cell through its Scala REPL
 * ({@code scala.tools.nsc.interpreter.IMain}, Scala 2.12). When the cell's code throws, {@code
 * IMain}'s {@code ReadEvalPrint.bindError} binds it to {@code lastException} ({@code directBind}:
 * one compilation of a holder object and one of a {@code val} line), on the cell's thread; then
 * Toree's {@code ScalaInterpreter.interpretConstructExecuteError} reads it back ({@code
 * retrieveLastException}: interprets {@code _exceptionHack.lastException = lastException}) and
 * clears it ({@code clearLastException}: {@code directBind} of {@code null}). That is five runs of
 * the compiler for one exception. {@code bindError} skips its binding only when {@code IMain}'s
 * private {@code bindExceptions} is false, and then rethrows the exception out of {@code
 * IMain.interpret}: through Toree's task manager and {@code ScalaInterpreter.interpret} into the
 * {@code ExecuteRequestTaskActor}, whose actor would fail and never answer (the kernel stays
 * busy). So both halves are needed:
 *
 * <ol>
 *   <li>{@link #install}: the {@code ExecuteRequestTaskActor}'s interpreter (its only reference to
 *       Toree's {@code ScalaInterpreter}, field {@code ...ExecuteRequestTaskActor$$interpreter}) is
 *       replaced by a {@link Proxy} of Toree's {@code Interpreter} interface that passes every
 *       call through, and, for {@code interpret}, turns an exception that escapes it during an
 *       interrupt into the result Toree would have built: {@code (Results.Error,
 *       Right(ExecuteError(class name, localized message, traceback)))}. The user sees the same
 *       {@code ename} and {@code evalue} as before ({@code java.lang.InterruptedException}, {@code
 *       sleep interrupted}), an error reply and the {@code idle} status; the REPL's state is
 *       unchanged (the interrupted line was never recorded, as on Toree's own error path).
 *   <li>{@link #beforeInterrupt}: the launcher's interrupt sets {@code bindExceptions} to false
 *       just before it interrupts the cell's thread, only while a cell runs inside the proxy;
 *       the proxy sets it back when that cell ends, whatever the outcome.
 * </ol>
 *
 * <p>The Toree objects are reached from the {@code kernel} value that Toree binds in its REPL:
 * the {@link Warmup} cell hands it over in a system property ({@link #KERNEL_PROPERTY}) and waits
 * (at most 5 s) until the launcher has installed the proxy and taken the property back, so the
 * proxy is in place before any user cell; the actor is found through Toree's actor system
 * ({@code /user/interpreter/execute_request_task}).
 * Everything goes through reflection on Toree's, Akka's and Scala's classes (the launcher
 * compiles against the JDK only), and degrades to Toree's own reporting: if any class, field or
 * method is missing, {@link #install} logs why and leaves Toree untouched; if the actor is ever
 * restarted (a new instance with the original interpreter), no cell runs inside the proxy and
 * {@link #beforeInterrupt} leaves {@code bindExceptions} alone. Other exceptions (a cell that
 * throws by itself) keep Toree's path: {@code bindExceptions} is only off between an interrupt
 * and the end of the interrupted cell.
 */
final class InterruptReport {
  /** The system property the warm-up cell puts Toree's {@code kernel} value in. */
  static final String KERNEL_PROPERTY = "gp.launcher.toree.kernel";

  /** Below the actor system's {@code /user} guardian. */
  static final String[] TASK_ACTOR_PATH = {"interpreter", "execute_request_task"};
  static final String TASK_ACTOR_FIELD =
      "org$apache$toree$kernel$protocol$v5$interpreter$tasks$ExecuteRequestTaskActor$$interpreter";
  static final String BIND_EXCEPTIONS_FIELD = "scala$tools$nsc$interpreter$IMain$$bindExceptions";

  /** Frames of the REPL's wrapper of a cell: {@code $line12.$read$$iw$$iw.<init>}. */
  private static final Pattern WRAPPER = Pattern.compile("^\\$line\\d+\\.\\$read.*");

  private static final Object LOCK = new Object();
  private static volatile Hook hook;
  /** How long the last install took (the warm-up cell waited that long), for the log. */
  static volatile long installMs = -1;

  private InterruptReport() {}

  /**
   * Wait up to {@code timeoutMs} for the warm-up cell to hand over Toree's {@code kernel}, then
   * install the proxy while that cell waits (so no user cell runs before it is in place), and
   * take the property back, which lets the cell go on. Called by {@link ToreeLauncher} on a
   * thread of its own. Returns why it could not, or null when installed.
   */
  static String awaitAndInstall(long timeoutMs) {
    long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
    Object kernel = System.getProperties().get(KERNEL_PROPERTY);
    while (kernel == null && System.nanoTime() < deadline) {
      try {
        Thread.sleep(10);
      } catch (InterruptedException err) {
        return "interrupted";
      }
      kernel = System.getProperties().get(KERNEL_PROPERTY);
    }
    if (kernel == null) {
      return "the warm-up cell did not hand over Toree's kernel";
    }
    long started = System.nanoTime();
    try {
      return install(kernel);
    } finally {
      System.getProperties().remove(KERNEL_PROPERTY);
      installMs = (System.nanoTime() - started) / 1_000_000L;
    }
  }

  /**
   * Install the proxy from Toree's {@code kernel}. The actor is reached without a message to it
   * (it is busy running the warm-up cell): the actor system's {@code /user} guardian, the path
   * below it, the provider's synchronous lookup. Returns why it could not, or null.
   */
  static String install(Object kernel) {
    try {
      Field loaderField = declaredField(kernel.getClass(), "actorLoader");
      Object loader = loaderField.get(kernel);
      Object system = loader.getClass().getMethod("actorRefFactory").invoke(loader);
      Object provider = system.getClass().getMethod("provider").invoke(system);
      Class<?> providerType = Class.forName("akka.actor.ActorRefProvider", false, system.getClass().getClassLoader());
      Class<?> pathType = Class.forName("akka.actor.ActorPath", false, system.getClass().getClassLoader());
      Object guardian = providerType.getMethod("guardian").invoke(provider);
      Object path = guardian.getClass().getMethod("path").invoke(guardian);
      for (String name : TASK_ACTOR_PATH) {
        path = pathType.getMethod("child", String.class).invoke(path, name);
      }
      Object ref = providerType.getMethod("resolveActorRef", pathType).invoke(provider, path);
      Object cell = ref.getClass().getMethod("underlying").invoke(ref);
      Object actor = cell.getClass().getMethod("actor").invoke(cell);
      if (actor == null) {
        return "no actor at " + path;
      }
      Field interpreterField = actor.getClass().getField(TASK_ACTOR_FIELD);
      Object real = interpreterField.get(actor);
      if (real == null || Proxy.isProxyClass(real.getClass())) {
        return "the actor has no interpreter, or already a proxy";
      }
      Object imain = real.getClass().getMethod("iMain").invoke(real);
      Field bindExceptions = declaredField(imain.getClass(), BIND_EXCEPTIONS_FIELD);
      ClassLoader toree = real.getClass().getClassLoader();
      Class<?> api = Class.forName("org.apache.toree.interpreter.Interpreter", false, toree);
      Hook installed = new Hook(real, imain, bindExceptions, new Results(toree));
      Object proxy = Proxy.newProxyInstance(toree, new Class<?>[] {api}, installed);
      interpreterField.setAccessible(true);
      interpreterField.set(actor, proxy);
      hook = installed;
      return null;
    } catch (InvocationTargetException err) {
      return String.valueOf(err.getCause());
    } catch (Exception | LinkageError err) {
      return String.valueOf(err);
    }
  }

  /**
   * Called by the launcher's interrupt just before it interrupts a cell's thread: lets that
   * cell's exception out of the REPL unbound, for the proxy to report. Returns whether it did
   * (false: Toree's own reporting, as without the proxy).
   */
  static boolean beforeInterrupt() {
    Hook current = hook;
    return current != null && current.arm();
  }

  /** Whether the proxy is installed (for the launcher's log). */
  static boolean installed() {
    return hook != null;
  }

  /** The field {@code name} declared by {@code type} or a superclass, made accessible. */
  static Field declaredField(Class<?> type, String name) throws NoSuchFieldException {
    for (Class<?> current = type; current != null; current = current.getSuperclass()) {
      try {
        Field found = current.getDeclaredField(name);
        found.setAccessible(true);
        return found;
      } catch (NoSuchFieldException err) {
        // look in the superclass
      }
    }
    throw new NoSuchFieldException(type.getName() + "." + name);
  }

  /** Toree's result types, built through reflection. */
  static final class Results {
    private final Object error;
    private final java.lang.reflect.Constructor<?> executeError;
    private final java.lang.reflect.Constructor<?> right;
    private final java.lang.reflect.Constructor<?> tuple;
    private final java.lang.reflect.Constructor<?> cons;
    private final Object nil;

    Results(ClassLoader loader) throws ReflectiveOperationException {
      error = Class.forName("org.apache.toree.interpreter.Results$Error$", true, loader)
          .getField("MODULE$").get(null);
      Class<?> list = Class.forName("scala.collection.immutable.List", false, loader);
      executeError = Class.forName("org.apache.toree.interpreter.ExecuteError", true, loader)
          .getConstructor(String.class, String.class, list);
      right = Class.forName("scala.util.Right", true, loader).getConstructor(Object.class);
      tuple = Class.forName("scala.Tuple2", true, loader).getConstructor(Object.class, Object.class);
      cons = Class.forName("scala.collection.immutable.$colon$colon", true, loader)
          .getConstructor(Object.class, list);
      nil = Class.forName("scala.collection.immutable.Nil$", true, loader)
          .getField("MODULE$").get(null);
    }

    /** {@code (Results.Error, Right(ExecuteError(name, value, traceback)))}. */
    Object error(String name, String value, List<String> traceback)
        throws ReflectiveOperationException {
      Object lines = nil;
      for (int i = traceback.size() - 1; i >= 0; i--) {
        lines = cons.newInstance(traceback.get(i), lines);
      }
      return tuple.newInstance(error, right.newInstance(executeError.newInstance(name, value, lines)));
    }
  }

  /** The proxy's handler: passes calls through; see the class comment for {@code interpret}. */
  static final class Hook implements InvocationHandler {
    private final Object real;
    private final Object imain;
    private final Field bindExceptions;
    private final Results results;
    private int running;
    private boolean armed;

    Hook(Object real, Object imain, Field bindExceptions, Results results) {
      this.real = real;
      this.imain = imain;
      this.bindExceptions = bindExceptions;
      this.results = results;
    }

    boolean arm() {
      synchronized (LOCK) {
        if (running == 0) {
          return false;
        }
        if (!armed) {
          try {
            bindExceptions.setBoolean(imain, false);
          } catch (IllegalAccessException err) {
            return false;
          }
          armed = true;
        }
        return true;
      }
    }

    private boolean disarm() {
      synchronized (LOCK) {
        boolean was = armed;
        if (armed) {
          try {
            bindExceptions.setBoolean(imain, true);
          } catch (IllegalAccessException err) {
            ToreeLauncher.log("Could not restore the REPL's exception binding: " + err);
          }
          armed = false;
        }
        return was;
      }
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
      if (method.getDeclaringClass() == Object.class) {
        switch (method.getName()) {
          case "equals":
            return proxy == args[0];
          case "hashCode":
            return System.identityHashCode(proxy);
          default:
            return "InterruptReport(" + real + ")";
        }
      }
      boolean interpret = method.getName().equals("interpret") && args != null && args.length == 3;
      if (!interpret) {
        try {
          return method.invoke(real, args);
        } catch (InvocationTargetException err) {
          throw err.getCause();
        }
      }
      synchronized (LOCK) {
        running++;
      }
      Object result = null;
      Throwable escaped = null;
      boolean wasArmed;
      try {
        result = method.invoke(real, args);
      } catch (InvocationTargetException err) {
        escaped = err.getCause();
      } finally {
        synchronized (LOCK) {
          running--;
          wasArmed = disarm();
        }
      }
      // Only an armed interrupt lets an exception out of the REPL; anything else is Toree's.
      if (escaped == null) {
        return result;
      }
      if (!wasArmed) {
        throw escaped;
      }
      Throwable cause = unwrap(escaped);
      return results.error(cause.getClass().getName(), cause.getLocalizedMessage(), traceback(cause));
    }
  }

  /** The exception the cell's code threw, out of the REPL's reflective call's wrappers. */
  static Throwable unwrap(Throwable err) {
    Throwable current = err;
    while ((current instanceof InvocationTargetException
            || current instanceof ExceptionInInitializerError
            || current instanceof java.util.concurrent.ExecutionException)
        && current.getCause() != null) {
      current = current.getCause();
    }
    return current;
  }

  /**
   * The traceback lines as the REPL prints them: the exception, its frames down to the cell's
   * wrapper, then how many it left out ({@code ... 37 elided}).
   */
  static List<String> traceback(Throwable err) {
    List<String> lines = new ArrayList<>();
    lines.add(err.toString());
    StackTraceElement[] frames = err.getStackTrace();
    int shown = 0;
    while (shown < frames.length
        && !(WRAPPER.matcher(frames[shown].getClassName()).matches()
            && frames[shown].getMethodName().equals("<init>"))) {
      lines.add("  at " + frames[shown]);
      shown++;
    }
    if (shown < frames.length) {
      lines.add("  ... " + (frames.length - shown) + " elided");
    }
    return lines;
  }
}
