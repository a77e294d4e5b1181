package io.shardmap.server.internal;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.grpc.ForwardingServerCall;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import java.io.InputStream;
import java.net.SocketAddress;
import java.util.logging.Logger;

/**
 * Answers a request whose bytes are not a valid message of its method's request type (truncated, a wrong
 * wire type, invalid UTF-8 in a string field, nested too deep) with {@code INVALID_ARGUMENT}, one log line
 * without a stack trace, and a close that goes through the ordinary {@link ServerCall}, so interceptors
 * applied outside this wrapper (the RPC counter) see and count it.
 *
 * <p>Why a wrapper and not an interceptor: grpc-java parses a request with the method's request
 * marshaller inside {@code ServerCallImpl}'s {@code messagesAvailable}, before any listener (and so any
 * interceptor) sees it. The exception escapes to {@code ServerImpl}, which closes the stream itself with
 * {@code UNKNOWN: Application error processing RPC}, bypassing every ServerCall wrapper, and rethrows it
 * into the call executor, which logs it at SEVERE with the whole stack trace. So here the parse must not
 * throw: every method is re-declared with a request marshaller that yields either the message or a
 * {@link Malformed} marker (the wire type of the request becomes {@code Object}), and with a handler that
 * passes messages on to the original one and turns a marker into the refusal. Responses are untouched.
 *
 * <p>Only protobuf decoding failures count as malformed; anything else a marshaller throws is a bug and
 * keeps gRPC's own handling (UNKNOWN, logged with its stack trace).
 */
public final class MalformedRequests {
  private static final Logger log = Logger.getLogger(MalformedRequests.class.getName());

  private MalformedRequests() {}

  /** Every method of {@code service}, guarded; the service descriptor keeps its schema (for reflection). */
  public static ServerServiceDefinition guard(ServerServiceDefinition service) {
    ServiceDescriptor original = service.getServiceDescriptor();
    ServiceDescriptor.Builder descriptor = ServiceDescriptor.newBuilder(original.getName())
        .setSchemaDescriptor(original.getSchemaDescriptor());
    java.util.List<ServerMethodDefinition<?, ?>> methods = new java.util.ArrayList<>();
    for (ServerMethodDefinition<?, ?> m : service.getMethods()) {
      ServerMethodDefinition<?, ?> guarded = guardMethod(m);
      descriptor.addMethod(guarded.getMethodDescriptor());
      methods.add(guarded);
    }
    ServerServiceDefinition.Builder b = ServerServiceDefinition.builder(descriptor.build());
    for (ServerMethodDefinition<?, ?> m : methods) {
      b.addMethod(m);
    }
    return b.build();
  }

  private static <Q, R> ServerMethodDefinition<Object, R> guardMethod(ServerMethodDefinition<Q, R> def) {
    MethodDescriptor<Q, R> method = def.getMethodDescriptor();
    MethodDescriptor<Object, R> guarded = method.toBuilder(new GuardedMarshaller<>(method.getRequestMarshaller()),
        method.getResponseMarshaller()).build();
    String requestType = requestType(method);
    ServerCallHandler<Q, R> handler = def.getServerCallHandler();
    return ServerMethodDefinition.create(guarded, (call, headers) -> {
      RefusableCall<Q, R> inner = new RefusableCall<>(call, method);
      return new GuardedListener<>(handler.startCall(inner, headers), inner, requestType);
    });
  }

  /** The protobuf type of the method's requests, for the error message. */
  private static String requestType(MethodDescriptor<?, ?> method) {
    if (method.getRequestMarshaller() instanceof MethodDescriptor.PrototypeMarshaller<?> p
        && p.getMessagePrototype() instanceof Message m) {
      return m.getDescriptorForType().getFullName();
    }
    return "request message";
  }

  /** A request that could not be decoded, and why. */
  private record Malformed(String reason) {}

  private static final class GuardedMarshaller<Q> implements MethodDescriptor.Marshaller<Object> {
    private final MethodDescriptor.Marshaller<Q> original;

    GuardedMarshaller(MethodDescriptor.Marshaller<Q> original) {
      this.original = original;
    }

    @Override
    @SuppressWarnings("unchecked")
    public InputStream stream(Object value) {
      return original.stream((Q) value);
    }

    @Override
    public Object parse(InputStream stream) {
      try {
        return original.parse(stream);
      } catch (RuntimeException e) {
        // grpc-protobuf wraps the decoding failure (INTERNAL "Invalid protobuf byte sequence", caused by
        // an InvalidProtocolBufferException); only that is the client's fault.
        for (Throwable t = e; t != null; t = t.getCause()) {
          if (t instanceof InvalidProtocolBufferException ipbe) {
            return new Malformed(ipbe.getMessage());
          }
        }
        throw e;
      }
    }
  }

  /**
   * The call as the original handler sees it. Once the request was refused, whatever the application
   * still does on it (only possible for client- or bidi-streaming methods, whose handler runs before the
   * last request arrives) is dropped, and the call reads as cancelled.
   */
  private static final class RefusableCall<Q, R> extends ForwardingServerCall<Q, R> {
    private final ServerCall<Object, R> call;
    private final MethodDescriptor<Q, R> method;
    private boolean refused; // guarded by this

    RefusableCall(ServerCall<Object, R> call, MethodDescriptor<Q, R> method) {
      this.call = call;
      this.method = method;
    }

    @Override
    @SuppressWarnings("unchecked")
    protected ServerCall<Q, R> delegate() {
      // Only the request type differs, and nothing below touches requests: the cast is safe.
      return (ServerCall<Q, R>) (ServerCall<?, R>) call;
    }

    @Override
    public MethodDescriptor<Q, R> getMethodDescriptor() {
      return method;
    }

    @Override
    public synchronized void sendMessage(R message) {
      if (!refused) {
        call.sendMessage(message);
      }
    }

    @Override
    public synchronized void close(Status status, Metadata trailers) {
      if (!refused) {
        call.close(status, trailers);
      }
    }

    @Override
    public synchronized boolean isCancelled() {
      return refused || call.isCancelled();
    }

    /** Closes the call with {@code status} unless the application already closed it; true if it did. */
    synchronized boolean refuse(Status status) {
      if (refused) {
        return false;
      }
      refused = true;
      try {
        call.close(status, new Metadata());
        return true;
      } catch (IllegalStateException alreadyClosed) {
        // The application closed it first (a bidi stream); nothing is left to refuse.
        return false;
      }
    }

    SocketAddress remote() {
      return call.getAttributes() == null ? null : call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR);
    }
  }

  /**
   * Passes decoded requests on; on the first malformed one, refuses the call and tells the original
   * listener the call is cancelled (so a streaming application stops), then ignores every later event.
   * Listener events of one call never overlap (gRPC serializes them), so {@code refused} needs no lock.
   */
  private static final class GuardedListener<Q, R> extends ServerCall.Listener<Object> {
    private final ServerCall.Listener<Q> delegate;
    private final RefusableCall<Q, R> call;
    private final String requestType;
    private boolean refused;

    GuardedListener(ServerCall.Listener<Q> delegate, RefusableCall<Q, R> call, String requestType) {
      this.delegate = delegate;
      this.call = call;
      this.requestType = requestType;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void onMessage(Object message) {
      if (refused) {
        return;
      }
      if (message instanceof Malformed bad) {
        refused = true;
        String method = call.getMethodDescriptor().getFullMethodName();
        String why = "request: could not be parsed as a " + requestType + " (the request message of " + method
            + "): " + bad.reason();
        if (call.refuse(Status.INVALID_ARGUMENT.withDescription(why))) {
          log.warning("refused a malformed " + method + " request from " + call.remote() + ": " + bad.reason());
        }
        delegate.onCancel();
        return;
      }
      delegate.onMessage((Q) message);
    }

    @Override
    public void onHalfClose() {
      if (!refused) {
        delegate.onHalfClose();
      }
    }

    @Override
    public void onCancel() {
      if (!refused) {
        delegate.onCancel();
      }
    }

    @Override
    public void onComplete() {
      if (!refused) {
        delegate.onComplete();
      }
    }

    @Override
    public void onReady() {
      if (!refused) {
        delegate.onReady();
      }
    }
  }
}
