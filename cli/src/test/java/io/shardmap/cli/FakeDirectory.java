package io.shardmap.cli;

import com.google.protobuf.Message;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.WatchResponse;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * An in-process stand-in for a directory server: every RPC of both services records its request and
 * answers with what the test queued for that method (a response, a Status, or {@link #HANG}). A method
 * without a queued answer fails with UNIMPLEMENTED, so a command calling an unexpected RPC fails its test.
 */
final class FakeDirectory implements AutoCloseable {
  /** An answer that never comes (for deadline tests). */
  static final Object HANG = new Object();

  private final String name = InProcessServerBuilder.generateName();
  private final Server server;
  private final List<Message> requests = new CopyOnWriteArrayList<>();
  private final Map<String, Deque<Object>> answers = new HashMap<>();
  private final List<WatchResponse> watchResponses = new ArrayList<>();
  private Status watchEnd;
  final CountDownLatch watchCancelled = new CountDownLatch(1);
  final List<String> targets = new CopyOnWriteArrayList<>();

  FakeDirectory() {
    try {
      server = InProcessServerBuilder.forName(name).directExecutor()
          .addService(definition(ShardMapServiceGrpc.getServiceDescriptor()))
          .addService(definition(ShardMapAdminServiceGrpc.getServiceDescriptor()))
          .build().start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Queues answers of a method (its bare name, e.g. "Lookup"), used in order; the last one keeps
   * answering further calls.
   */
  synchronized FakeDirectory answer(String method, Object... responses) {
    answers.computeIfAbsent(method, m -> new ArrayDeque<>()).addAll(List.of(responses));
    return this;
  }

  /** What Watch streams: these responses, then {@code end} (an error status) or, if null, an open stream. */
  synchronized FakeDirectory watch(List<WatchResponse> responses, Status end) {
    watchResponses.addAll(responses);
    watchEnd = end;
    return this;
  }

  List<Message> requests() {
    return List.copyOf(requests);
  }

  /** The one request of this type; fails unless exactly one was received. */
  <T extends Message> T only(Class<T> type) {
    List<T> of = all(type);
    if (of.size() != 1) {
      throw new AssertionError("expected exactly one " + type.getSimpleName() + ", got " + of.size() + ": "
          + requests);
    }
    return of.get(0);
  }

  <T extends Message> List<T> all(Class<T> type) {
    List<T> of = new ArrayList<>();
    for (Message m : requests) {
      if (type.isInstance(m)) {
        of.add(type.cast(m));
      }
    }
    return of;
  }

  /** Runs a command line against this fake (whatever --server says) with the given environment. */
  Result run(Map<String, String> env, String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = ShardmapCtl.run(args, env, this::channel, new PrintWriter(out), new PrintWriter(err));
    return new Result(code, out.toString(), err.toString());
  }

  Result run(String... args) {
    return run(Map.of(), args);
  }

  private ManagedChannel channel(String target) {
    targets.add(target);
    return InProcessChannelBuilder.forName(name).directExecutor().build();
  }

  record Result(int code, String out, String err) {
    @Override
    public String toString() {
      return "exit " + code + "\n--- stdout\n" + out + "--- stderr\n" + err;
    }
  }

  @Override
  public void close() {
    server.shutdownNow();
    try {
      server.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private ServerServiceDefinition definition(ServiceDescriptor sd) {
    ServerServiceDefinition.Builder b = ServerServiceDefinition.builder(sd);
    for (MethodDescriptor<?, ?> m : sd.getMethods()) {
      add(b, m);
    }
    return b.build();
  }

  private <Q, R> void add(ServerServiceDefinition.Builder b, MethodDescriptor<Q, R> m) {
    if (m.getType() == MethodDescriptor.MethodType.UNARY) {
      b.addMethod(m, ServerCalls.asyncUnaryCall((req, out) -> unary(m, req, out)));
    } else {
      b.addMethod(m, ServerCalls.asyncServerStreamingCall((req, out) -> stream(req, out)));
    }
  }

  private <Q, R> void unary(MethodDescriptor<Q, R> m, Q req, StreamObserver<R> out) {
    requests.add((Message) req);
    Object a;
    synchronized (this) {
      Deque<Object> q = answers.get(m.getBareMethodName());
      a = q == null || q.isEmpty() ? null : q.size() > 1 ? q.poll() : q.peek();
    }
    if (a == HANG) {
      return;
    }
    if (a instanceof Status s) {
      out.onError(s.asRuntimeException());
      return;
    }
    if (a == null) {
      out.onError(Status.UNIMPLEMENTED.withDescription("the fake has no answer for " + m.getBareMethodName())
          .asRuntimeException());
      return;
    }
    // Re-parse through the method's marshaller: a canned answer of the wrong type fails loudly here.
    R r = m.parseResponse(((Message) a).toByteString().newInput());
    if (!((Message) r).getDescriptorForType().equals(((Message) a).getDescriptorForType())) {
      throw new AssertionError("canned " + a.getClass().getSimpleName() + " for " + m.getBareMethodName());
    }
    out.onNext(r);
    out.onCompleted();
  }

  private <Q, R> void stream(Q req, StreamObserver<R> out) {
    requests.add((Message) req);
    ServerCallStreamObserver<R> call = (ServerCallStreamObserver<R>) out;
    call.setOnCancelHandler(watchCancelled::countDown);
    List<WatchResponse> send;
    Status end;
    synchronized (this) {
      send = List.copyOf(watchResponses);
      end = watchEnd;
    }
    for (WatchResponse w : send) {
      @SuppressWarnings("unchecked") // Watch is the only streaming method; its response type is WatchResponse.
      R r = (R) w;
      out.onNext(r);
    }
    if (end != null) {
      out.onError(end.asRuntimeException());
    }
  }
}
