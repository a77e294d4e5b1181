package io.shardmap.server.internal;

import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.*;
import java.util.concurrent.Executor;
import java.util.function.Function;

/**
 * The admin side. Each call waits on etcd, so it runs on its own executor, off the transport threads
 * that serve lookups.
 */
public final class AdminService extends ShardMapAdminServiceGrpc.ShardMapAdminServiceImplBase {
  private final AdminOps ops;
  private final Sequences sequences;
  private final Executor executor;

  public AdminService(AdminOps ops, Sequences sequences, Executor executor) {
    this.ops = ops;
    this.sequences = sequences;
    this.executor = executor;
  }

  @Override
  public void createSequence(CreateSequenceRequest r, StreamObserver<CreateSequenceResponse> o) {
    run(r, o, sequences::create);
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
  public void registerShard(RegisterShardRequest r, StreamObserver<RegisterShardResponse> o) {
    run(r, o, ops::registerShard);
  }

  @Override
  public void updateShard(UpdateShardRequest r, StreamObserver<UpdateShardResponse> o) {
    run(r, o, ops::updateShard);
  }

  @Override
  public void deregisterShard(DeregisterShardRequest r, StreamObserver<DeregisterShardResponse> o) {
    run(r, o, ops::deregisterShard);
  }

  @Override
  public void createKeyspace(CreateKeyspaceRequest r, StreamObserver<CreateKeyspaceResponse> o) {
    run(r, o, ops::createKeyspace);
  }

  @Override
  public void describeKeyspace(DescribeKeyspaceRequest r, StreamObserver<DescribeKeyspaceResponse> o) {
    run(r, o, ops::describeKeyspace);
  }

  @Override
  public void dropKeyspace(DropKeyspaceRequest r, StreamObserver<DropKeyspaceResponse> o) {
    run(r, o, ops::dropKeyspace);
  }

  @Override
  public void splitRange(SplitRangeRequest r, StreamObserver<SplitRangeResponse> o) {
    run(r, o, ops::splitRange);
  }

  @Override
  public void mergeRanges(MergeRangesRequest r, StreamObserver<MergeRangesResponse> o) {
    run(r, o, ops::mergeRanges);
  }

  @Override
  public void reassignRange(ReassignRangeRequest r, StreamObserver<ReassignRangeResponse> o) {
    run(r, o, ops::reassignRange);
  }

  @Override
  public void reassignBucket(ReassignBucketRequest r, StreamObserver<ReassignBucketResponse> o) {
    run(r, o, ops::reassignBucket);
  }

  @Override
  public void reshardHash(ReshardHashRequest r, StreamObserver<ReshardHashResponse> o) {
    run(r, o, ops::reshardHash);
  }

  @Override
  public void addRingNodes(AddRingNodesRequest r, StreamObserver<AddRingNodesResponse> o) {
    run(r, o, ops::addRingNodes);
  }

  @Override
  public void removeRingNodes(RemoveRingNodesRequest r, StreamObserver<RemoveRingNodesResponse> o) {
    run(r, o, ops::removeRingNodes);
  }

  @Override
  public void putDirectoryEntries(PutDirectoryEntriesRequest r, StreamObserver<PutDirectoryEntriesResponse> o) {
    run(r, o, ops::putDirectoryEntries);
  }

  @Override
  public void deleteDirectoryEntries(DeleteDirectoryEntriesRequest r,
                                     StreamObserver<DeleteDirectoryEntriesResponse> o) {
    run(r, o, ops::deleteDirectoryEntries);
  }

  @Override
  public void setDirectoryFallback(SetDirectoryFallbackRequest r, StreamObserver<SetDirectoryFallbackResponse> o) {
    run(r, o, ops::setDirectoryFallback);
  }

  @Override
  public void setRegion(SetRegionRequest r, StreamObserver<SetRegionResponse> o) {
    run(r, o, ops::setRegion);
  }

  @Override
  public void removeRegion(RemoveRegionRequest r, StreamObserver<RemoveRegionResponse> o) {
    run(r, o, ops::removeRegion);
  }
}
