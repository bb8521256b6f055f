// SPDX-License-Identifier: GPL-3.0-or-later
pragma solidity 0.8.37;

/// @title RoundsManager (lpt test chain)
/// @notice Minimal round clock for lpt's local chain: rounds are `roundLength` blocks long,
/// `initializeRound()` stores the block hash used as ticket auxData, and the TicketBroker reads
/// `currentRound()` / `blockHashForRound()` exactly like Livepeer's RoundsManager interface.
contract RoundsManager {
    uint256 public immutable roundLength;
    uint256 public lastInitializedRound;

    mapping(uint256 => bytes32) private roundBlockHashes;

    event NewRound(uint256 indexed round, bytes32 blockHash);

    constructor(uint256 _roundLength) {
        require(_roundLength > 0, "round length is zero");
        roundLength = _roundLength;
    }

    /// @notice Starts the current round, recording the hash of the previous block.
    function initializeRound() external {
        uint256 round = currentRound();
        require(!currentRoundInitialized(), "round already initialized");
        lastInitializedRound = round;
        bytes32 hash = blockhash(block.number - 1);
        roundBlockHashes[round] = hash;
        emit NewRound(round, hash);
    }

    function blockNum() public view returns (uint256) {
        return block.number;
    }

    function blockHash(uint256 _block) external view returns (bytes32) {
        return blockhash(_block);
    }

    function currentRound() public view returns (uint256) {
        return block.number / roundLength;
    }

    function currentRoundStartBlock() external view returns (uint256) {
        return currentRound() * roundLength;
    }

    function currentRoundInitialized() public view returns (bool) {
        // Round 0 counts as initialized only once initializeRound() ran in it.
        return lastInitializedRound == currentRound() && roundBlockHashes[currentRound()] != bytes32(0);
    }

    function blockHashForRound(uint256 _round) external view returns (bytes32) {
        return roundBlockHashes[_round];
    }
}
