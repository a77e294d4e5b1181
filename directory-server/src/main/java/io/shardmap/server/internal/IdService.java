package io.shardmap.server.internal;

import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.AcquireWorkerRequest;
import io.shardmap.proto.v1.AcquireWorkerResponse;
import io.shardmap.proto.v1.GetSequenceRequest;
import io.shardmap.proto.v1.GetSequenceResponse;
import io.shardmap.proto.v1.ListSequencesRequest;
import io.shardmap.proto.v1.ListSequencesResponse;
import io.shardmap.proto.v1.ReleaseWorkerRequest;
import io.shardmap.proto.v1.ReleaseWorkerResponse;
import io.shardmap.proto.v1.RenewWorkerRequest;
import io.shardmap.proto.v1.RenewWorkerResponse;
import io.shardmap.proto.v1.ReserveSequenceBlockRequest;
import io.shardmap.proto.v1.ReserveSequenceBlockResponse;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import java.util.concurrent.Executor;
import java.util.function.Function;

/**
 * Worker leases of global id generators ({@link WorkerLeases}) and dense sequences ({@link Sequences}: read
 * and reserve; creating one is on {@link AdminService}). Each
 * call waits on etcd, so it runs on its own executor, off the transport threads that serve lookups.
 */
public final class IdService extends ShardMapIdServiceGrpc.ShardMapIdServiceImplBase {
  private final WorkerLeases leases;
  private final Sequences sequences;
  private final Executor executor;

  public IdService(WorkerLeases leases, Sequences sequences, Executor executor) {
    this.leases = leases;
    this.sequences = sequences;
    this.executor = executor;
  }

  private <Q, R> void run(Q req, StreamObserver<R> out, Function<Q, R> op) {
    executor.execute(() -> {
      R result;
      try {
        result = op.apply(req);
      } catch (RuntimeException e) {
        out.onError(Errors.toStatus(e));
        return;
      }
      out.onNext(result);
      out.onCompleted();
    });
  }

  @Override
  public void acquireWorker(AcquireWorkerRequest r, StreamObserver<AcquireWorkerResponse> o) {
    run(r, o, leases::acquire);
  }

  @Override
  public void renewWorker(RenewWorkerRequest r, StreamObserver<RenewWorkerResponse> o) {
    run(r, o, leases::renew);
  }

  @Override
  public void releaseWorker(ReleaseWorkerRequest r, StreamObserver<ReleaseWorkerResponse> o) {
    run(r, o, leases::release);
  }

  @Override
  public void getSequence(GetSequenceRequest r, StreamObserver<GetSequenceResponse> o) {
    run(r, o, sequences::get);
  }

  @Override
  public void listSequences(ListSequencesRequest r, StreamObserver<ListSequencesResponse> o) {
    run(r, o, q -> sequences.list());
  }

  @Override
  public void reserveSequenceBlock(ReserveSequenceBlockRequest r, StreamObserver<ReserveSequenceBlockResponse> o) {
    run(r, o, sequences::reserve);
  }
}
